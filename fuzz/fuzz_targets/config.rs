//! coinslotd's configuration file: any TOML document is read into a checked `Config` or
//! refused with a message, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(err) = coinslotd::Config::parse(text) {
            assert!(!err.to_string().is_empty());
        }
    }
});
