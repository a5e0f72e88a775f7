//! Photos sent to the server: base64 data URLs (JSON bodies) or file bytes
//! (multipart), identified by a hash of their bytes for the cache, decoded only when
//! the cache does not hold them, with the pipeline's size limits checked on the header
//! first.

use std::io::Cursor;

use base64::Engine;
use image::DynamicImage;
use omg_llava::ImageLimits;
use sha2::{Digest, Sha256};

use super::error::ApiError;

/// A photo as received: its bytes and their SHA-256 (the cache key).
#[derive(Clone)]
pub struct PhotoBytes {
    /// The encoded file (PNG or JPEG).
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`.
    pub hash: [u8; 32],
}

impl PhotoBytes {
    /// Wraps file bytes.
    pub fn new(bytes: Vec<u8>) -> Result<Self, ApiError> {
        if bytes.is_empty() {
            return Err(ApiError::bad_request(
                "bad_image",
                "the image is empty (0 bytes)",
            ));
        }
        let hash = Sha256::digest(&bytes).into();
        Ok(Self { bytes, hash })
    }

    /// A `data:image/...;base64,...` URL (what OpenAI clients send as `image_url`). A
    /// remote `http(s)://` URL is refused: the server does not fetch from the network.
    pub fn from_data_url(url: &str) -> Result<Self, ApiError> {
        let bad = |m: String| ApiError::bad_request("bad_image", m);
        if url.starts_with("http://") || url.starts_with("https://") {
            return Err(bad(
                "remote image URLs are not fetched; send the image as a data URL (data:image/png;base64,...)".into(),
            ));
        }
        let rest = url
            .strip_prefix("data:")
            .ok_or_else(|| bad("an image must be a data URL (data:image/png;base64,...)".into()))?;
        let (meta, payload) = rest
            .split_once(',')
            .ok_or_else(|| bad("the data URL has no ',' before its data".into()))?;
        if !meta.ends_with(";base64") {
            return Err(bad(format!(
                "the data URL must be base64 (data:image/png;base64,...), not {meta:?}"
            )));
        }
        let payload: String = payload.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(payload.as_bytes())
            .or_else(|_| {
                base64::engine::general_purpose::STANDARD_NO_PAD.decode(payload.as_bytes())
            })
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(payload.as_bytes()))
            .map_err(|e| bad(format!("the image's base64 is invalid: {e}")))?;
        Self::new(bytes)
    }

    /// The photo's `(width, height)` from its header alone (nothing is decoded), held to
    /// `limits` (413 `image_too_large` past them, 415 `unsupported_image` when it is not
    /// a PNG or JPEG).
    pub fn dimensions(&self, limits: ImageLimits) -> Result<(u32, u32), ApiError> {
        let format = image::guess_format(&self.bytes).map_err(|e| unsupported(e.to_string()))?;
        let (width, height) = image::ImageReader::with_format(Cursor::new(&self.bytes), format)
            .into_dimensions()
            .map_err(|e| unsupported(e.to_string()))?;
        limits.check(width, height)?;
        Ok((width, height))
    }

    /// Decodes the photo, refusing it from its header when it is past `limits` (so a
    /// small file declaring a huge picture allocates nothing).
    pub fn decode(&self, limits: ImageLimits) -> Result<DynamicImage, ApiError> {
        use image::ImageDecoder;
        let format = image::guess_format(&self.bytes).map_err(|e| unsupported(e.to_string()))?;
        // the header is read once: its size is checked before any pixel is decoded
        let mut decoder = image::ImageReader::with_format(Cursor::new(&self.bytes), format)
            .into_decoder()
            .map_err(|e| unsupported(e.to_string()))?;
        let (width, height) = decoder.dimensions();
        limits.check(width, height)?;
        let mut decoder_limits = image::Limits::default();
        // RGBA at 16 bits is the most a decoder holds per pixel, plus its own buffers
        decoder_limits.max_alloc = Some(8 * u64::from(width) * u64::from(height) + (64 << 20));
        // as `ImageReader::decode`: the output buffer counts against the limit
        decoder_limits
            .reserve(decoder.total_bytes())
            .map_err(|e| unsupported(e.to_string()))?;
        decoder
            .set_limits(decoder_limits)
            .map_err(|e| unsupported(e.to_string()))?;
        DynamicImage::from_decoder(decoder).map_err(|e| unsupported(e.to_string()))
    }
}

/// The 415 of bytes that are not a PNG or JPEG the decoder can read.
fn unsupported(e: String) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_image",
        format!("the image cannot be read (PNG or JPEG expected): {e}"),
    )
}
