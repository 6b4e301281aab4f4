//! Every config the repository ships parses and validates, so that a command a doc or a config's
//! own header gives cannot fail on the file itself: `prior_*.toml` as `smirl pretrain` options,
//! the rest as `smirl tune` configs.

use std::path::Path;

#[test]
fn shipped_configs_parse_and_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("prior_") {
            let text = std::fs::read_to_string(&path).unwrap();
            if let Err(e) = toml::from_str::<model::PretrainOptions>(&text) {
                panic!("{name}: {e}");
            }
        } else if let Err(e) = rl::TuneConfig::from_file(&path) {
            panic!("{name}: {e}");
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} configs found in {}", dir.display());
}
