//! The paid forward proxy's HTTP/1 request head (CONNECT or absolute-form) and its
//! `Proxy-Authorization` credential, as a stranger sends them.
#![no_main]

use coinslot_forward::http1;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(head) = http1::parse(data) {
        let _ = http1::wanted(&head);
        if let Some(value) = head.header("proxy-authorization") {
            if let Ok(text) = std::str::from_utf8(value) {
                let _ = coinslot_forward::from_authorization(text);
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = coinslot_forward::from_authorization(text);
    }
});
