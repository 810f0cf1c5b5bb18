//! Generated protobuf types and gRPC stubs. Only this crate runs protoc;
//! domain code converts at its boundary and does not pass these types around.

/// `streaming.media.v1`: transcode jobs and video events (NATS payloads).
pub mod media {
    pub mod v1 {
        tonic::include_proto!("streaming.media.v1");
    }
}

/// `streaming.control.v1`: the control plane gRPC API.
pub mod control {
    pub mod v1 {
        tonic::include_proto!("streaming.control.v1");
    }
}

/// `streaming.marker.v1`: marker batches and change events (NATS payloads).
pub mod marker {
    pub mod v1 {
        tonic::include_proto!("streaming.marker.v1");
    }
}

/// Encoded `FileDescriptorSet` of every proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/streaming_descriptor.bin"));

pub use prost;
pub use prost_types;
