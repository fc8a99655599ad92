//! Which [`Source`] runs a stream config: the one place that maps a [`StreamKind`] to its
//! source, used by the daemon's stream set and by the connection probe ([`super::probe`]).

use std::sync::Arc;

use super::rtsp::RtspSource;
use super::testpattern::TestPatternSource;
use super::{Source, SourceCtx, SourceError};
use crate::config::{StreamConfig, StreamKind};

/// The source for a stream's kind. A config that cannot work becomes a source that fails at
/// once with a clear sentence, so the stream shows as `failed` instead of vanishing.
pub fn source_for(cfg: &StreamConfig) -> Arc<dyn Source> {
    match cfg.kind {
        StreamKind::Rtsp => match RtspSource::from_config(cfg) {
            Ok(s) => Arc::new(s),
            Err(e) => Arc::new(FailedSource(e.to_string())),
        },
        StreamKind::Testpattern => Arc::new(TestPatternSource::new(cfg)),
        StreamKind::V4l2 => v4l2_source(cfg),
    }
}

#[cfg(feature = "v4l2")]
fn v4l2_source(cfg: &StreamConfig) -> Arc<dyn Source> {
    Arc::new(super::v4l2::V4l2Source::new(cfg))
}

#[cfg(not(feature = "v4l2"))]
fn v4l2_source(_cfg: &StreamConfig) -> Arc<dyn Source> {
    Arc::new(FailedSource(
        "this edgecam was built without V4L2 support (cargo feature `v4l2`)".to_string(),
    ))
}

/// A source whose config cannot work; every attempt ends at once with the same config error.
#[derive(Debug)]
struct FailedSource(
    /// The sentence shown as the stream's `last_error`.
    String,
);

impl Source for FailedSource {
    fn run<'a>(
        &'a self,
        _ctx: SourceCtx<'a>,
    ) -> futures::future::BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(async move { Err(SourceError::Config(self.0.clone())) })
    }
}
