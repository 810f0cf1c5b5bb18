//! Timeline markers: the domain model ([`model`]: [`Marker`],
//! [`MarkerInput`], validation against the video's duration and the size
//! [`limits`]) and their store in Redis ([`store`]: [`MarkerStore`], the
//! change feed [`ChangeFeed`]).
//!
//! Times: `media_time` and `duration` are seconds on the video's
//! presentation timeline (the clock HLS players seek on, 0 = start of the
//! first segment); `source_time` is the wall-clock instant of the source
//! frame (RFC 3339, for live sources); `created_at` is when the marker
//! service stored the marker.

pub mod model;
pub mod store;

pub use model::{limits, Marker, MarkerInput, ValidationError};
pub use store::{Change, ChangeFeed, ChangeId, ChangeOp, MarkerStore, Range, StoreError};
