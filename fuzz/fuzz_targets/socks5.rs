//! The SOCKS5 handshake (RFC 1928 greeting and request, RFC 1929 user/password) on the
//! bytes a stranger sends: refused or understood, never a panic or a hang.
#![no_main]

use std::sync::OnceLock;

use coinslot_forward::socks5;
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;

fuzz_target!(|data: &[u8]| {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(coinslot_fuzz::runtime);
    runtime.block_on(async {
        let mut stream = tokio::io::join(data, tokio::io::sink());
        if socks5::greet(&mut stream).await.is_ok() {
            let _ = socks5::request(&mut stream).await;
        }
    });
});
