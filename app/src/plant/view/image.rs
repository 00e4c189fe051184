//! Part images, fetched from the station that keeps them and handed to the browser: the
//! station token never leaves the plant view.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A station that has not answered within this is reported, not waited for.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Larger than any part image a station keeps; a station sending more is refused.
const MAX_IMAGE_BYTES: usize = 64 << 20;

#[derive(Debug)]
pub struct Stations {
    client: reqwest::Client,
    token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{0}")]
    Request(#[from] reqwest::Error),
    #[error("the station answered {0}")]
    Status(StatusCode),
    #[error("the station sent {0:?}, not an image")]
    NotImage(String),
    #[error("the image is larger than {} MiB", MAX_IMAGE_BYTES >> 20)]
    TooLarge,
}

impl Stations {
    pub fn new(token: Option<String>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            // The token goes to the address the station announced, nowhere else.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { client, token })
    }

    pub async fn image(&self, api: &str, id: i64) -> Result<Response, ImageError> {
        let url = format!("{}/verdicts/{id}/image", api.trim_end_matches('/'));
        let mut request = self.client.get(&url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let mut response = request.send().await?;
        let status = response.status();
        if status != StatusCode::OK {
            return Err(ImageError::Status(status));
        }
        let kind = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if !kind.starts_with("image/") {
            return Err(ImageError::NotImage(kind));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_IMAGE_BYTES as u64)
        {
            return Err(ImageError::TooLarge);
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if bytes.len() + chunk.len() > MAX_IMAGE_BYTES {
                return Err(ImageError::TooLarge);
            }
            bytes.extend_from_slice(&chunk);
        }
        let kind = HeaderValue::from_str(&kind).map_err(|_| ImageError::NotImage(kind))?;
        Ok((
            [
                (header::CONTENT_TYPE, kind),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("private, max-age=3600"),
                ),
            ],
            Body::from(bytes),
        )
            .into_response())
    }
}
