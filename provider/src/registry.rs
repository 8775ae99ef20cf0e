//! The graphs of one provider, by wasi-nn name (`<model>/<graph>`, as our host registers them:
//! models/README.md), read from a tar stream of `<model>/<graph>.onnx` files.

use crate::engine::{Pins, TractGraph};
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

#[derive(Default)]
pub struct Registry {
    graphs: BTreeMap<String, Arc<TractGraph>>,
}

impl Registry {
    pub fn get(&self, name: &str) -> Option<&Arc<TractGraph>> {
        self.graphs.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.graphs.keys().map(String::as_str)
    }

    pub fn insert(&mut self, name: String, graph: TractGraph) {
        self.graphs.insert(name, Arc::new(graph));
    }

    /// Loads every `<model>/<graph>.onnx` of a tar archive (other entries are skipped) as the
    /// graph `<model>/<graph>`, with `pins` applied to each.
    pub fn load_tar(&mut self, archive: impl Read, pins: &Pins) -> Result<(), String> {
        let mut archive = tar::Archive::new(archive);
        let entries = archive.entries().map_err(|e| format!("reading the graph archive: {e}"))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| format!("reading the graph archive: {e}"))?;
            let path = entry.path().map_err(|e| format!("a graph archive entry: {e}"))?.into_owned();
            let parts: Vec<String> = path.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            let [model, file] = parts.as_slice() else { continue };
            let Some(graph) = file.strip_suffix(".onnx") else { continue };
            let name = format!("{model}/{graph}");
            let mut bytes = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut bytes).map_err(|e| format!("reading `{}`: {e}", path.display()))?;
            let loaded = TractGraph::load(&bytes, pins).map_err(|e| format!("graph `{name}`: {e}"))?;
            self.insert(name, loaded);
        }
        if self.graphs.is_empty() {
            return Err("the graph archive holds no `<model>/<graph>.onnx` file".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_without_graphs_is_refused() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_cksum();
        builder.append_data(&mut header, "base/notes.txt", &b"hello"[..]).unwrap();
        let archive = builder.into_inner().unwrap();
        let err = Registry::default().load_tar(&archive[..], &Pins::default()).err().unwrap();
        assert!(err.contains("no `<model>/<graph>.onnx`"), "{err}");
        let err = Registry::default().load_tar(&b"not a tar"[..], &Pins::default()).err();
        assert!(err.is_some());
    }
}
