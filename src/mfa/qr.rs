//! The enrolment QR code: the `otpauth://` URI drawn as one SVG path (no fonts, scripts or external
//! references), and as a `data:` URI for an `<img>` under a CSP of `img-src 'self' data:`.

use base64::Engine as _;
use qrcode::{Color, EcLevel, QrCode};
use std::fmt::{self, Write as _};

/// Light modules around the symbol: the quiet zone of ISO/IEC 18004 §6.3.8.
pub const QUIET_ZONE: usize = 4;

/// Why the text could not be drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QrError {
    /// The text is too long for any QR version at error-correction level M (the caller's fault).
    TooLong,
}

impl fmt::Display for QrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QrError::TooLong => write!(f, "the text does not fit in a QR code"),
        }
    }
}

impl std::error::Error for QrError {}

/// The text as an SVG document: a white square and one black path of `h`-runs, one module per user
/// unit, scaled by the viewer (`viewBox`), with the quiet zone included.
pub fn svg(text: &str) -> Result<String, QrError> {
    // Level M (15 % recovery) keeps an otpauth URI at a version a phone camera reads easily.
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).map_err(|_| QrError::TooLong)?;
    let width = code.width();
    let colors = code.to_colors();
    let size = width + 2 * QUIET_ZONE;
    let mut path = String::new();
    for (y, row) in colors.chunks(width.max(1)).enumerate() {
        let mut x = 0;
        while x < row.len() {
            if row.get(x) != Some(&Color::Dark) {
                x += 1;
                continue;
            }
            let start = x;
            while row.get(x) == Some(&Color::Dark) {
                x += 1;
            }
            // Writing to a String cannot fail.
            let _ = write!(path, "M{} {}h{}v1h-{}z", start + QUIET_ZONE, y + QUIET_ZONE, x - start, x - start);
        }
    }
    Ok(format!(
        concat!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" shape-rendering="crispEdges">"#,
            r##"<path fill="#fff" d="M0 0h{size}v{size}h-{size}z"/><path fill="#000" d="{path}"/></svg>"##
        ),
        size = size,
        path = path
    ))
}

/// The SVG as a `data:image/svg+xml;base64,` URI, for an `<img src>`.
pub fn data_uri(text: &str) -> Result<String, QrError> {
    let svg = svg(text)?;
    Ok(format!("data:image/svg+xml;base64,{}", base64::engine::general_purpose::STANDARD.encode(svg)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_is_self_contained() {
        let svg = svg("otpauth://totp/Example:a%40b.c?secret=JBSWY3DPEHPK3PXP&issuer=Example").unwrap();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        for forbidden in ["<script", "<text", "href", "url(", "font", "<style", " on"] {
            assert!(!svg.contains(forbidden), "{forbidden} in {svg}");
        }
    }

    #[test]
    fn data_uri_is_base64_svg() {
        let uri = data_uri("hello").unwrap();
        let body = uri.strip_prefix("data:image/svg+xml;base64,").unwrap();
        let decoded = base64::engine::general_purpose::STANDARD.decode(body).unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), svg("hello").unwrap());
    }

    #[test]
    fn too_long_text_is_an_error() {
        assert_eq!(svg(&"x".repeat(3000)), Err(QrError::TooLong));
    }
}
