"""The page (src/http/page/) in a real browser: headless Chromium driven by chromium-driver.

Each test drives the page as a person would (choose files, record from the microphone, read
the transcript, download it) against the real host with the real model, and keeps a screenshot
in tests/artifacts/page/ (not committed; PAGE_ARTIFACTS overrides). The microphone is Chrome's
fake capture device playing jfk.wav once.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import srt

from conftest import FIXTURES, ROOT, start_host

JFK = "And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
ARTIFACTS = Path(os.environ.get("PAGE_ARTIFACTS", ROOT / "tests" / "artifacts" / "page"))
TRANSCRIBE_TIMEOUT = 120


def words(text):
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def need(binary):
    path = shutil.which(binary)
    if not path:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{binary} is missing (scripts/setup-apt.sh installs it)")
        pytest.skip(f"{binary} is missing")
    return path


@pytest.fixture(scope="module")
def mic_wav():
    """jfk.wav as Chrome's fake microphone wants it: 48 kHz, 16-bit, with 2 s of silence after."""
    out = Path(tempfile.mkdtemp(prefix="page-mic-")) / "jfk48k.wav"
    subprocess.run([need("sox"), str(FIXTURES / "gen/jfk.wav"), "-r", "48000", "-b", "16", str(out), "pad", "0", "2"],
                   check=True)
    yield out
    shutil.rmtree(out.parent, ignore_errors=True)


def new_browser(mic_wav):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = need("chromium")
    profile = tempfile.mkdtemp(prefix="page-chrome-")
    downloads = Path(profile) / "downloads"
    downloads.mkdir()
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 f"--user-data-dir={profile}", "--window-size=1200,1100", "--autoplay-policy=no-user-gesture-required",
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                 f"--use-file-for-fake-audio-capture={mic_wav}%noloop"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(need("chromedriver")), options=options)
    driver.set_script_timeout(30)
    driver.downloads = downloads
    return driver, profile


@pytest.fixture
def browser(mic_wav, request):
    driver, profile = new_browser(mic_wav)
    yield driver
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        driver.save_screenshot(str(ARTIFACTS / f"{request.node.name}.png"))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver, condition, timeout=TRANSCRIBE_TIMEOUT, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition(driver)
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; page text:\n{driver.find_element('tag name', 'body').text}")


def open_page(driver, base):
    driver.get(base + "/")
    wait(driver, lambda d: d.execute_script("return document.body.dataset.ready === 'true'"), 20, "the page script")
    wait(driver, lambda d: d.find_element("id", "server").text.startswith("Ready"), 30, "the models")


def cards(driver, state=None):
    selector = ".result" + (f"[data-state={state}]" if state else "")
    return driver.find_elements("css selector", selector)


def finished(driver, n):
    """Waits until `n` cards have finished (done or error) and returns all cards, oldest first."""
    wait(driver, lambda d: len(cards(d, "done")) + len(cards(d, "error")) >= n, what=f"{n} finished transcripts")
    return list(reversed(cards(driver)))


def text_of(card):
    """The transcript as shown, without its timestamps."""
    return " ".join(t.text for t in card.find_elements("css selector", ".transcript .text"))


def download(driver, card, fmt):
    """Clicks the card's download link for `fmt` and returns the downloaded file's text."""
    link = card.find_element("css selector", f".downloads a[data-format={fmt}]")
    name = link.get_attribute("download")
    assert name.endswith("." + fmt)
    target = driver.downloads / name
    target.unlink(missing_ok=True)
    link.click()
    wait(driver, lambda d: target.exists() and target.stat().st_size > 0, 20, f"the download of {name}")
    return target.read_text()


def test_html_only_for_browsers(host):
    html = urllib.request.Request(host + "/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    with urllib.request.urlopen(html) as r:
        assert r.status == 200
        assert r.headers["content-type"].startswith("text/html")
        csp = r.headers["content-security-policy"]
        # No 'unsafe-inline' anywhere: the page's script and styles are same-origin files.
        assert "default-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        page = r.read().decode()
    # No inline script or handler that a strict CSP would block.
    assert "<script>" not in page and " onclick=" not in page and "javascript:" not in page
    assert "<title>whisper-edge" in page and 'src="/assets/page.js"' in page
    assert '<option value="de">German</option>' in page
    for asset, kind in (("/assets/page.js", "text/javascript"), ("/assets/page.css", "text/css"), ("/assets/icon.svg", "image/svg+xml")):
        with urllib.request.urlopen(host + asset) as r:
            assert r.headers["content-type"].startswith(kind), asset
    # curl and API clients see the API as before: GET / is not a transcription.
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(host + "/")
    assert e.value.code == 405
    assert json.loads(e.value.read())["error"]["code"] == "method_not_allowed"


def test_choose_a_file_and_read_its_words(browser, host):
    open_page(browser, host)
    models = [o.get_attribute("value") for o in browser.find_elements("css selector", "#model option")]
    assert "base" in models and "tiny.en" in models and "whisper-1" not in models
    browser.find_element("id", "file").send_keys(str(FIXTURES / "gen/jfk.wav"))
    [card] = finished(browser, 1)
    assert card.get_attribute("data-state") == "done", card.text
    assert words(text_of(card)) == words(JFK)
    assert card.find_element("css selector", ".language").text.startswith("English")
    segments = card.find_elements("css selector", ".segment")
    starts = [float(s.get_attribute("data-start")) for s in segments]
    assert starts == sorted(starts) and len(starts) >= 1
    assert segments[0].find_element("css selector", ".time").text == "0:00"
    # Clicking a segment moves the player there.
    segments[-1].click()
    t = browser.execute_script("return document.querySelector('.result .player').currentTime")
    assert abs(t - starts[-1]) < 0.5
    subs = list(srt.parse(download(browser, card, "srt")))
    assert words(" ".join(s.content for s in subs)) == words(JFK)
    assert download(browser, card, "vtt").startswith("WEBVTT")
    assert words(download(browser, card, "txt")) == words(JFK)
    result = json.loads(download(browser, card, "json"))
    assert result["language"] == "en" and result["duration"] == pytest.approx(11.0, abs=0.1)
    assert len(result["segments"]) == len(segments)


def test_several_files_with_word_timestamps(browser, host):
    open_page(browser, host)
    browser.find_element("id", "words").click()
    browser.find_element("id", "file").send_keys(
        "\n".join(str(FIXTURES / p) for p in ("gen/jfk.wav", "gen/e2e/jfk.webm")))
    done = finished(browser, 2)
    assert [c.find_element("css selector", ".filename").text for c in done] == ["jfk.wav", "jfk.webm"]
    for card in done:
        assert card.get_attribute("data-state") == "done", card.text
        assert words(text_of(card)) == words(JFK)
        spans = card.find_elements("css selector", ".word")
        assert words(" ".join(s.text for s in spans)) == words(JFK)
        starts = [float(s.get_attribute("data-start")) for s in spans]
        assert starts == sorted(starts)
    # Playing highlights the word under the playhead, and its segment.
    word = done[0].find_elements("css selector", ".word")[4]
    middle = (float(word.get_attribute("data-start")) + float(word.get_attribute("data-end"))) / 2
    browser.execute_script("const p = arguments[0].closest('.result').querySelector('.player');"
                           "p.currentTime = arguments[1]; p.dispatchEvent(new Event('timeupdate'));", word, middle)
    active = done[0].find_elements("css selector", ".word.active")
    assert [w.text for w in active] == [word.text]
    assert len(done[0].find_elements("css selector", ".segment.active")) == 1
    assert json.loads(download(browser, done[0], "json"))["words"][0]["word"].lower().startswith("and")


def test_record_from_the_microphone(browser, host):
    open_page(browser, host)
    record = browser.find_element("id", "record")
    record.click()
    wait(browser, lambda d: record.get_attribute("aria-pressed") == "true", 10, "recording to start")
    time.sleep(12.5)
    assert browser.find_element("id", "rec-time").text.startswith("0:1")
    record.click()
    [card] = finished(browser, 1)
    assert card.get_attribute("data-state") == "done", card.text
    assert re.fullmatch(r"recording-\d{6}\.webm", card.find_element("css selector", ".filename").text)
    heard = " ".join(words(text_of(card)))
    assert "ask not what your country can do for you" in heard, heard


def test_unsupported_file_shows_the_error(browser, host):
    open_page(browser, host)
    browser.find_element("id", "file").send_keys(str(FIXTURES / "gen/e2e/jfk.wma"))
    [card] = finished(browser, 1)
    assert card.get_attribute("data-state") == "error"
    assert card.find_element("css selector", ".badge").text == "415"
    error = card.find_element("css selector", ".error").text
    assert "Unsupported format" in error and "WMA" in error, error
    assert not card.find_element("css selector", ".retry").is_displayed(), "retrying the same file cannot help"
    assert not card.find_element("css selector", ".downloads").is_displayed()


def test_dark_mode_and_keyboard(browser, host):
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    open_page(browser, host)
    background = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(18, 21, 28)", background
    # Every control has a label, and Tab reaches the file chooser and the record button.
    for control in browser.find_elements("css selector", "input, select"):
        cid = control.get_attribute("id")
        assert browser.find_elements("css selector", f"label[for={cid}]") or \
            browser.execute_script("return arguments[0].closest('label') !== null", control), cid
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    seen = set()
    for _ in range(12):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        seen.add(browser.switch_to.active_element.get_attribute("id"))
    assert {"file", "record", "model", "language"} <= seen, seen
    browser.find_element("id", "file").send_keys(str(FIXTURES / "gen/jfk.wav"))
    [card] = finished(browser, 1)
    assert card.get_attribute("data-state") == "done"


def test_api_key_field_when_the_server_wants_one(mic_wav, request):
    proc, base = start_host(extra_args=["--env", "WHISPER_API_KEY=sesame"])
    driver, profile = new_browser(mic_wav)
    try:
        driver.get(base + "/")
        wait(driver, lambda d: d.find_element("id", "key-field").is_displayed(), 30, "the API key field")
        assert "API key" in driver.find_element("id", "server").text
        key = driver.find_element("id", "api-key")
        key.send_keys("sesame")
        driver.find_element("id", "model").click()  # leaving the field applies the key
        wait(driver, lambda d: d.find_element("id", "server").text.startswith("Ready"), 30, "the models with the key")
        driver.find_element("id", "file").send_keys(str(FIXTURES / "gen/jfk.wav"))
        [card] = finished(driver, 1)
        assert card.get_attribute("data-state") == "done", card.text
        assert words(text_of(card)) == words(JFK)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / f"{request.node.name}.png"))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        proc.kill()
        proc.wait()
