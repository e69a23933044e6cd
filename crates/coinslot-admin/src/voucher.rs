//! Printable vouchers: a token as a QR code and as text on one page.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// What a voucher shows.
#[derive(Debug, Clone)]
pub struct Voucher<'a> {
    /// The token (`cashuB…`).
    pub token: &'a str,
    /// Its value.
    pub amount: u64,
    /// Its unit.
    pub unit: &'a str,
    /// The mint's URL, where it can be redeemed.
    pub mint_url: &'a str,
    /// The operator's note (promotion name, …).
    pub memo: &'a str,
}

/// The token as an SVG QR code.
pub fn qr_svg(data: &str) -> Result<String, String> {
    let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::L)
        .map_err(|e| format!("cannot encode the token as a QR code: {e}"))?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(280, 280)
        .quiet_zone(true)
        .build())
}

fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '&' => "&amp;".into(),
            '"' => "&quot;".into(),
            '\'' => "&#39;".into(),
            c => c.to_string(),
        })
        .collect()
}

impl Voucher<'_> {
    /// A self-contained HTML page, laid out for printing.
    pub fn html(&self) -> Result<String, String> {
        let qr = qr_svg(self.token)?;
        Ok(format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Voucher: {amount} {unit}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 36rem; color: #111; }}
.voucher {{ border: 2px dashed #444; border-radius: 12px; padding: 1.5rem; text-align: center; }}
.amount {{ font-size: 2.5rem; font-weight: 700; margin: .25rem 0; }}
.memo {{ font-size: 1.1rem; margin-bottom: 1rem; }}
.qr svg {{ width: 280px; height: 280px; }}
.token {{ font-family: ui-monospace, monospace; font-size: .6rem; word-break: break-all; text-align: left; margin-top: 1rem; }}
.how {{ font-size: .9rem; color: #333; }}
@media print {{ body {{ margin: 0; }} }}
</style></head>
<body><div class="voucher">
<div class="memo">{memo}</div>
<div class="amount">{amount} {unit}</div>
<div class="qr">{qr}</div>
<p class="how">Scan with a Cashu wallet, or paste the token below. Mint: {mint}</p>
<div class="token">{token}</div>
</div></body></html>
"#,
            amount = self.amount,
            unit = escape(self.unit),
            memo = escape(self.memo),
            mint = escape(self.mint_url),
            token = escape(self.token),
        ))
    }
}
