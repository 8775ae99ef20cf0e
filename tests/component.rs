//! Checks on the built artefacts: the component imports only `wasi:*` (so the same .wasm
//! runs on our host, `wasmtime serve` and Spin) and spin.toml describes it correctly.
//! The .wasm is `WHISPER_COMPONENT` or target/wasm32-wasip2/release/whisper_component.wasm
//! (`make build-component`); without it the import check fails under `CI=true`, else skips.

use std::path::PathBuf;

fn component_path() -> Option<PathBuf> {
    let p = std::env::var("WHISPER_COMPONENT").map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/wasm32-wasip2/release/whisper_component.wasm")
    });
    if p.exists() {
        Some(p)
    } else if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{} is missing: run `make build-component`", p.display());
    } else {
        eprintln!("skipped: {} is missing", p.display());
        None
    }
}

/// Top-level imports and exports of a component.
fn component_world(bytes: &[u8]) -> (Vec<String>, Vec<String>) {
    use wasmparser::{Parser, Payload};
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let mut depth = 0;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.expect("valid wasm") {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth -= 1,
            Payload::ComponentImportSection(s) if depth == 0 => {
                for i in s {
                    imports.push(i.unwrap().name.0.to_string());
                }
            }
            Payload::ComponentExportSection(s) if depth == 0 => {
                for e in s {
                    exports.push(e.unwrap().name.0.to_string());
                }
            }
            _ => {}
        }
    }
    (imports, exports)
}

#[test]
fn component_imports_only_wasi_and_exports_the_http_handler() {
    let Some(path) = component_path() else { return };
    let (imports, exports) = component_world(&std::fs::read(path).unwrap());
    assert!(!imports.is_empty());
    for i in &imports {
        assert!(i.starts_with("wasi:"), "non-WASI import {i}: the .wasm would not run on stock hosts");
    }
    for nn in ["wasi:nn/graph@0.2.0-rc-2024-10-28", "wasi:nn/inference@0.2.0-rc-2024-10-28", "wasi:nn/tensor@0.2.0-rc-2024-10-28"] {
        assert!(imports.iter().any(|i| i == nn), "missing {nn} in {imports:?}");
    }
    assert!(!imports.iter().any(|i| i.starts_with("wasi:http/outgoing-handler")), "the component must not make outbound requests");
    assert!(exports.iter().any(|e| e == "wasi:http/incoming-handler@0.2.0"), "{exports:?}");
}

#[test]
fn spin_manifests_describe_the_composed_app() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // (manifest, the source `make edge` produces, the dependency that satisfies wasi:nn)
    for (file, source, nn) in [
        ("spin.toml", "target/edge/whisper-edge-base.wasm", None),
        ("spin-deps.toml", "target/wasm32-wasip2/release/whisper_component.wasm", Some("target/edge/nn-base.wasm")),
    ] {
        let manifest: toml::Table = std::fs::read_to_string(root.join(file)).unwrap().parse().unwrap();
        assert_eq!(manifest["spin_manifest_version"].as_integer(), Some(2), "{file}");
        let triggers = manifest["trigger"]["http"].as_array().expect("[[trigger.http]]");
        assert_eq!(triggers.len(), 1);
        let id = triggers[0]["component"].as_str().unwrap();
        assert!(triggers[0]["route"].as_str().unwrap().starts_with('/'));
        let comp = &manifest["component"][id];
        assert_eq!(comp["source"].as_str(), Some(source), "{file}");
        let deps = comp.get("dependencies").and_then(|d| d.get("wasi:nn@0.2.0-rc-2024-10-28"));
        assert_eq!(deps.and_then(|d| d["path"].as_str()), nn, "{file}");
        let build = &comp["build"];
        assert_eq!(build["command"].as_str(), Some("make edge EDGE_MODELS=base"), "{file}");
        assert!(build["watch"].as_array().is_some_and(|w| !w.is_empty()));
        assert_eq!(comp["environment"]["WHISPER_MODEL"].as_str(), Some("base"));
        assert_eq!(comp["allowed_outbound_hosts"].as_array().map(|a| a.len()), Some(0));
        assert!(comp.get("files").is_none(), "the component needs no files");
    }
    // The paths are the ones `make edge` writes (scripts/compose.sh: OUT_DIR/whisper-edge-MODEL.wasm, OUT_DIR/nn-MODEL.wasm).
    let makefile = std::fs::read_to_string(root.join("Makefile")).unwrap();
    assert!(makefile.contains("EDGE_DIR := $(TARGET_DIR)/edge"));
    let compose = std::fs::read_to_string(root.join("scripts/compose.sh")).unwrap();
    assert!(compose.contains(r#"edge="$out/whisper-edge-$model.wasm""#) && compose.contains(r#"plug="$out/nn-$model.wasm""#));
}
