//! The sentence-transformers folder reader (`cairn model convert`): config.json, modules.json
//! and the pooling config are outside input. The fuzz input is split on 0xFF bytes into those
//! three files, written to a scratch folder, and read.
#![no_main]
use cairn::model::convert::{read_config, ConvertOptions};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("cairn-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(d.join("1_Pooling")).unwrap();
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = scratch();
    let mut parts = data.split(|&b| b == 0xFF);
    let files = ["config.json", "modules.json", "1_Pooling/config.json"];
    for f in files {
        let path = dir.join(f);
        match parts.next() {
            Some(p) => std::fs::write(&path, p).unwrap(),
            None => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    if let Ok(cfg) = read_config(dir, &ConvertOptions::default()) {
        // What the reader accepts must pass the bundle's own check.
        cfg.validate()
            .expect("read_config returned a config that fails validate");
    }
});
