//! Configuration: defaults, file overrides, and errors that name the offending key.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::io::Write;

use coinslotd::Config;

fn write_config(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

fn load_err(text: &str) -> String {
    let file = write_config(text);
    Config::load(Some(file.path())).unwrap_err().to_string()
}

#[test]
fn no_config_means_a_sat_mint_on_3338() {
    let config = Config::load(None).unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:3338");
    assert_eq!(config.data_dir, std::path::PathBuf::from("./coinslot-data"));
    assert_eq!(config.mint.units.len(), 1);
    assert_eq!(config.mint.units[0].name, "sat");
}

#[test]
fn file_overrides_defaults() {
    let file = write_config(
        r#"
        listen = "127.0.0.1:4000"
        [mint.info]
        name = "Arcade"
        [[mint.units]]
        name = "credit"
        input_fee_ppk = 100
        "#,
    );
    let config = Config::load(Some(file.path())).unwrap();
    assert_eq!(config.listen.port(), 4000);
    assert_eq!(config.mint.info.name, "Arcade");
    assert_eq!(config.mint.units[0].name, "credit");
    assert_eq!(config.mint.units[0].input_fee_ppk, 100);
    assert_eq!(
        config.mint.units[0].max_order, 32,
        "unset fields keep defaults"
    );
}

#[test]
fn wrong_type_names_the_key() {
    let err = load_err("[[mint.units]]\nname = \"sat\"\nmax_order = \"lots\"\n");
    assert!(err.contains("max_order"), "{err}");
    assert!(err.contains("mint.units"), "{err}");
}

#[test]
fn unknown_key_is_refused_by_name() {
    let err = load_err("[mint]\nquote_ttl = 5\n");
    assert!(err.contains("quote_ttl"), "{err}");
}

#[test]
fn invalid_values_name_the_key() {
    let err = load_err("[[mint.units]]\nname = \"sat\"\n[[mint.units]]\nname = \"sat\"\n");
    assert!(err.contains("mint.units[1].name"), "{err}");
    let err = load_err("[[mint.units]]\nname = \"Bad Unit\"\n");
    assert!(err.contains("mint.units[0].name"), "{err}");
    let err = load_err("[[mint.units]]\nname = \"sat\"\nmin_mint = 10\nmax_mint = 5\n");
    assert!(err.contains("min_mint"), "{err}");
    let err = load_err("[backend]\nkind = \"lnd\"\n");
    assert!(err.contains("backend"), "{err}");
}

#[test]
fn missing_file_is_refused() {
    let err = Config::load(Some(std::path::Path::new("/nonexistent/coinslot.toml")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not exist"), "{err}");
}
