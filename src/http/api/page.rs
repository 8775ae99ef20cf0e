//! The page to try it: `GET /` for a browser (`Accept: text/html`), and its stylesheet and
//! script under `/assets/`. Plain HTML, CSS and JavaScript embedded in the .wasm: no build
//! step, nothing fetched from elsewhere, so it works on every host the component runs on.

use crate::http::message::Reply;
use crate::tokenizer::LANGUAGES;

/// Where the page's assets live.
pub const ASSETS: &str = "/assets/";

const INDEX: &str = include_str!("../page/index.html");
const ASSET_FILES: [(&str, &str, &str); 3] = [
    ("/assets/page.css", "text/css; charset=utf-8", include_str!("../page/page.css")),
    ("/assets/page.js", "text/javascript; charset=utf-8", include_str!("../page/page.js")),
    ("/assets/icon.svg", "image/svg+xml", include_str!("../page/icon.svg")),
];

/// The page, with the language menu filled from the tokenizer's table. Its script and styles
/// are same-origin files, so a strict CSP holds.
pub fn index() -> Reply {
    Reply::full(200, "text/html; charset=utf-8", INDEX.replace("<!-- languages -->", &language_options()).into_bytes())
        .with_header("cache-control", "no-cache")
        .with_header(
            "content-security-policy",
            "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; connect-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
        )
        .with_header("x-content-type-options", "nosniff")
        .with_header("referrer-policy", "no-referrer")
}

/// `<option value="de">German</option>…`, by name.
fn language_options() -> String {
    let mut languages: Vec<(&str, String)> = LANGUAGES
        .iter()
        .map(|(code, name)| {
            let mut title = name.to_string();
            title[..1].make_ascii_uppercase();
            (*code, title)
        })
        .collect();
    languages.sort_by(|a, b| a.1.cmp(&b.1));
    languages.iter().map(|(code, name)| format!("<option value=\"{code}\">{name}</option>")).collect()
}

/// An asset by its path, if there is one.
pub fn asset(path: &str) -> Option<Reply> {
    let (_, content_type, body) = ASSET_FILES.iter().find(|(p, _, _)| *p == path)?;
    Some(
        Reply::full(200, content_type, body.as_bytes().to_vec())
            .with_header("cache-control", "no-cache")
            .with_header("x-content-type-options", "nosniff"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_links_only_assets_that_exist() {
        for link in INDEX.split(['"', '\'']).filter(|s| s.starts_with(ASSETS)) {
            assert!(asset(link).is_some(), "{link} is linked but not served");
        }
        assert!(asset("/assets/nope.js").is_none());
        assert!(INDEX.contains("/assets/page.js") && INDEX.contains("/assets/page.css"));
        assert!(!INDEX.contains("http://") && !INDEX.contains("https://"), "nothing from elsewhere");
        let Reply::Full { body, .. } = index() else { panic!() };
        let html = String::from_utf8(body).unwrap();
        assert!(html.contains("<option value=\"de\">German</option>"), "languages are listed");
        assert_eq!(html.matches("<option value=").count(), LANGUAGES.len() + 2, "detect, server default, languages");
    }
}
