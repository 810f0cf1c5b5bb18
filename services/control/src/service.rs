//! `ControlPlane` implementation.

use stream_catalog::{Catalog, CatalogError};
use stream_hls::VideoId;
use stream_proto::control::v1 as pb;
use tonic::{Request, Response, Status};
use tracing::warn;

use crate::convert;

/// Default page size of `ListVideos`.
const DEFAULT_PAGE: u32 = 20;

/// The gRPC service.
pub struct ControlService {
    catalog: Catalog,
}

impl ControlService {
    pub fn new(catalog: Catalog) -> Self {
        ControlService { catalog }
    }
}

fn unavailable(e: CatalogError) -> Status {
    warn!(error = %e, "catalogue error");
    Status::unavailable("catalogue unavailable; retry")
}

#[tonic::async_trait]
impl pb::control_plane_server::ControlPlane for ControlService {
    async fn list_videos(
        &self,
        request: Request<pb::ListVideosRequest>,
    ) -> Result<Response<pb::ListVideosResponse>, Status> {
        let req = request.into_inner();
        let size = match req.page_size {
            0 => DEFAULT_PAGE,
            n if n > stream_catalog::MAX_PAGE as u32 => {
                return Err(Status::invalid_argument(format!(
                    "page_size {n} exceeds {}",
                    stream_catalog::MAX_PAGE
                )))
            }
            n => n,
        };
        let after = if req.page_token.is_empty() {
            None
        } else {
            let id: VideoId = req
                .page_token
                .parse()
                .map_err(|_| Status::invalid_argument("page_token is not from a previous page"))?;
            Some(id.to_string())
        };
        let (records, next) = self
            .catalog
            .list(size as usize, after.as_deref())
            .await
            .map_err(unavailable)?;
        Ok(Response::new(pb::ListVideosResponse {
            videos: records.iter().map(convert::video).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn get_video(
        &self,
        request: Request<pb::GetVideoRequest>,
    ) -> Result<Response<pb::Video>, Status> {
        let id: VideoId = request
            .into_inner()
            .video_id
            .parse()
            .map_err(|_| Status::invalid_argument("video_id is not a ULID"))?;
        let record = self
            .catalog
            .get(&id.to_string())
            .await
            .map_err(unavailable)?
            .ok_or_else(|| Status::not_found(format!("no video {id}")))?;
        Ok(Response::new(convert::video(&record)))
    }
}
