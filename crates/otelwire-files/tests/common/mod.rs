//! Helpers shared by the tests: reading a sink's files back.

#![allow(dead_code, unreachable_pub)]

use std::io::Read;
use std::path::{Path, PathBuf};

/// Every file of the sink `stem` in `dir`: rotated ones (gunzipped) first,
/// oldest first, then the current one; with each file's name.
pub fn sink_files(dir: &Path, stem: &str) -> Vec<(String, String)> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(&format!("{stem}.")) && n != &format!("{stem}.jsonl"))
        .collect();
    names.sort();
    names.push(format!("{stem}.jsonl"));
    names
        .into_iter()
        .filter(|n| dir.join(n).exists())
        .map(|n| {
            let text = read(&dir.join(&n));
            (n, text)
        })
        .collect()
}

/// A file's text, gunzipped when it ends in `.gz`.
pub fn read(path: &PathBuf) -> String {
    let bytes = std::fs::read(path).unwrap();
    if path.extension().is_some_and(|e| e == "gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut s)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        s
    } else {
        String::from_utf8(bytes).unwrap()
    }
}

/// The JSON lines of a file.
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}
