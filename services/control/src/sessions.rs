//! Playback sessions in Redis.
//!
//! Keys (prefix `P`):
//! * `P:session:<id>` — hash: `video`, `kind`, `max_height`, `created_ms`,
//!   `rendition`, `last_seq`, `accepted`, `rejected`; its TTL is the session
//!   TTL plus [`REAP_GRACE_MS`] so the reaper can still read it.
//! * `P:sessions` — sorted set: session id → expiry (Unix ms). A session is
//!   alive while its score is in the future; heartbeats and reports move it.
//! * `P:video-sessions:<video>` — the same, per video (for the per-video cap).
//!
//! Opening, touching, switching video and closing are Lua scripts, so the
//! caps hold under concurrency (no check-then-act race between replicas).

use redis::aio::ConnectionManager;

/// Extra lifetime of a session hash past its expiry, for the reaper, ms.
pub const REAP_GRACE_MS: u64 = 60_000;
/// Sessions the reaper handles per pass.
const REAP_BATCH: usize = 1000;

/// Session store errors.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session cap reached: {0} sessions at most")]
    GlobalCap(u64),
    #[error("session cap for this video reached: {0} sessions at most")]
    VideoCap(u64),
    #[error("no such session (closed or expired)")]
    NotFound,
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Caps and lifetime.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub max_sessions: u64,
    pub max_per_video: u64,
    /// ms without heartbeat or report before expiry.
    pub ttl_ms: u64,
}

/// A stored session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub id: String,
    pub video_id: String,
    /// `streaming.control.v1.ClientKind` value.
    pub kind: i32,
    /// 0 = no limit.
    pub max_height: u32,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub rendition: String,
    pub last_seq: u64,
    pub accepted: u64,
    pub rejected: u64,
}

const OPEN: &str = r#"
-- KEYS: sessions, video-sessions, session hash
-- ARGV: now, expiry, max, max_video, id, video, kind, max_height, hash_ttl
if redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[1], '+inf') >= tonumber(ARGV[3]) then return -1 end
if redis.call('ZCOUNT', KEYS[2], '(' .. ARGV[1], '+inf') >= tonumber(ARGV[4]) then return -2 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[5])
redis.call('HSET', KEYS[3], 'video', ARGV[6], 'kind', ARGV[7], 'max_height', ARGV[8],
  'created_ms', ARGV[1], 'rendition', '', 'last_seq', 0, 'accepted', 0, 'rejected', 0)
redis.call('PEXPIRE', KEYS[3], ARGV[9])
return 1
"#;

const TOUCH: &str = r#"
-- KEYS: sessions, session hash; ARGV: now, expiry, id, hash_ttl, prefix,
--   rendition, last_seq, accepted_delta, rejected_delta
local score = redis.call('ZSCORE', KEYS[1], ARGV[3])
if not score or tonumber(score) <= tonumber(ARGV[1]) then return 0 end
local video = redis.call('HGET', KEYS[2], 'video')
if not video then return 0 end
redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ARGV[3])
redis.call('ZADD', ARGV[5] .. ':video-sessions:' .. video, 'XX', ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
if ARGV[6] ~= '' then redis.call('HSET', KEYS[2], 'rendition', ARGV[6]) end
if tonumber(ARGV[7]) > 0 then redis.call('HSET', KEYS[2], 'last_seq', ARGV[7]) end
if tonumber(ARGV[8]) > 0 then redis.call('HINCRBY', KEYS[2], 'accepted', ARGV[8]) end
if tonumber(ARGV[9]) > 0 then redis.call('HINCRBY', KEYS[2], 'rejected', ARGV[9]) end
return 1
"#;

const SELECT: &str = r#"
-- KEYS: sessions, session hash, new video-sessions; ARGV: now, id, max_video, prefix, new video
local score = redis.call('ZSCORE', KEYS[1], ARGV[2])
if not score or tonumber(score) <= tonumber(ARGV[1]) then return 0 end
local old = redis.call('HGET', KEYS[2], 'video')
if old == ARGV[5] then return 1 end
if redis.call('ZCOUNT', KEYS[3], '(' .. ARGV[1], '+inf') >= tonumber(ARGV[3]) then return -2 end
if old then redis.call('ZREM', ARGV[4] .. ':video-sessions:' .. old, ARGV[2]) end
redis.call('ZADD', KEYS[3], score, ARGV[2])
redis.call('HSET', KEYS[2], 'video', ARGV[5], 'rendition', '')
return 1
"#;

const REMOVE: &str = r#"
-- KEYS: sessions, session hash; ARGV: id, prefix, only_if_expired_before (or '')
if ARGV[3] ~= '' then
  local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if not score or tonumber(score) > tonumber(ARGV[3]) then return false end
end
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return false end
local video = redis.call('HGET', KEYS[2], 'video')
if video then redis.call('ZREM', ARGV[2] .. ':video-sessions:' .. video, ARGV[1]) end
redis.call('DEL', KEYS[2])
return video or ''
"#;

/// Sessions in Redis.
#[derive(Clone)]
pub struct SessionStore {
    redis: ConnectionManager,
    prefix: String,
    pub limits: SessionLimits,
    open: redis::Script,
    touch: redis::Script,
    select: redis::Script,
    remove: redis::Script,
}

/// What a touch carries besides the new expiry.
#[derive(Debug, Default, Clone)]
pub struct TouchUpdate {
    pub rendition: Option<String>,
    pub last_seq: u64,
    pub accepted: u64,
    pub rejected: u64,
}

impl SessionStore {
    pub fn new(redis: ConnectionManager, prefix: &str, limits: SessionLimits) -> Self {
        SessionStore {
            redis,
            prefix: prefix.to_string(),
            limits,
            open: redis::Script::new(OPEN),
            touch: redis::Script::new(TOUCH),
            select: redis::Script::new(SELECT),
            remove: redis::Script::new(REMOVE),
        }
    }

    fn all_key(&self) -> String {
        format!("{}:sessions", self.prefix)
    }
    fn video_key(&self, video: &str) -> String {
        format!("{}:video-sessions:{video}", self.prefix)
    }
    fn session_key(&self, id: &str) -> String {
        format!("{}:session:{id}", self.prefix)
    }
    fn hash_ttl(&self) -> u64 {
        self.limits.ttl_ms + REAP_GRACE_MS
    }

    /// Create a session; returns its expiry (Unix ms).
    ///
    /// Errors: [`SessionError::GlobalCap`], [`SessionError::VideoCap`].
    pub async fn open(
        &self,
        id: &str,
        video_id: &str,
        kind: i32,
        max_height: u32,
        now_ms: i64,
    ) -> Result<i64, SessionError> {
        let expiry = now_ms + self.limits.ttl_ms as i64;
        let mut con = self.redis.clone();
        let r: i64 = self
            .open
            .key(self.all_key())
            .key(self.video_key(video_id))
            .key(self.session_key(id))
            .arg(now_ms)
            .arg(expiry)
            .arg(self.limits.max_sessions)
            .arg(self.limits.max_per_video)
            .arg(id)
            .arg(video_id)
            .arg(kind)
            .arg(max_height)
            .arg(self.hash_ttl())
            .invoke_async(&mut con)
            .await?;
        match r {
            -1 => Err(SessionError::GlobalCap(self.limits.max_sessions)),
            -2 => Err(SessionError::VideoCap(self.limits.max_per_video)),
            _ => Ok(expiry),
        }
    }

    /// Extend a live session's life and record stats; returns the new expiry.
    ///
    /// Errors: [`SessionError::NotFound`] when it expired or never existed.
    pub async fn touch(
        &self,
        id: &str,
        now_ms: i64,
        update: &TouchUpdate,
    ) -> Result<i64, SessionError> {
        let expiry = now_ms + self.limits.ttl_ms as i64;
        let mut con = self.redis.clone();
        let r: i64 = self
            .touch
            .key(self.all_key())
            .key(self.session_key(id))
            .arg(now_ms)
            .arg(expiry)
            .arg(id)
            .arg(self.hash_ttl())
            .arg(&self.prefix)
            .arg(update.rendition.as_deref().unwrap_or(""))
            .arg(update.last_seq)
            .arg(update.accepted)
            .arg(update.rejected)
            .invoke_async(&mut con)
            .await?;
        if r == 1 {
            Ok(expiry)
        } else {
            Err(SessionError::NotFound)
        }
    }

    /// Move a live session to another video (per-video cap applies).
    pub async fn select_video(
        &self,
        id: &str,
        video_id: &str,
        now_ms: i64,
    ) -> Result<(), SessionError> {
        let mut con = self.redis.clone();
        let r: i64 = self
            .select
            .key(self.all_key())
            .key(self.session_key(id))
            .key(self.video_key(video_id))
            .arg(now_ms)
            .arg(id)
            .arg(self.limits.max_per_video)
            .arg(&self.prefix)
            .arg(video_id)
            .invoke_async(&mut con)
            .await?;
        match r {
            1 => Ok(()),
            -2 => Err(SessionError::VideoCap(self.limits.max_per_video)),
            _ => Err(SessionError::NotFound),
        }
    }

    /// Remove a session now; returns its video id, `None` if it was gone.
    pub async fn close(&self, id: &str) -> Result<Option<String>, SessionError> {
        self.remove_if(id, None).await
    }

    async fn remove_if(
        &self,
        id: &str,
        expired_before: Option<i64>,
    ) -> Result<Option<String>, SessionError> {
        let mut con = self.redis.clone();
        let r: Option<String> = self
            .remove
            .key(self.all_key())
            .key(self.session_key(id))
            .arg(id)
            .arg(&self.prefix)
            .arg(expired_before.map(|t| t.to_string()).unwrap_or_default())
            .invoke_async(&mut con)
            .await?;
        Ok(r)
    }

    /// A live session.
    pub async fn get(&self, id: &str, now_ms: i64) -> Result<SessionRecord, SessionError> {
        let mut con = self.redis.clone();
        let (score, fields): (Option<f64>, std::collections::HashMap<String, String>) =
            redis::pipe()
                .cmd("ZSCORE")
                .arg(self.all_key())
                .arg(id)
                .cmd("HGETALL")
                .arg(self.session_key(id))
                .query_async(&mut con)
                .await?;
        let expires_ms = match score {
            Some(s) if s as i64 > now_ms => s as i64,
            _ => return Err(SessionError::NotFound),
        };
        let num = |k: &str| {
            fields
                .get(k)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let video_id = fields.get("video").cloned().ok_or(SessionError::NotFound)?;
        Ok(SessionRecord {
            id: id.to_string(),
            video_id,
            kind: num("kind") as i32,
            max_height: num("max_height") as u32,
            created_ms: num("created_ms") as i64,
            expires_ms,
            rendition: fields.get("rendition").cloned().unwrap_or_default(),
            last_seq: num("last_seq"),
            accepted: num("accepted"),
            rejected: num("rejected"),
        })
    }

    /// Live sessions ordered by expiry, `offset`..`offset + limit`, and the
    /// number of live sessions.
    pub async fn list(
        &self,
        now_ms: i64,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<SessionRecord>, u64), SessionError> {
        let mut con = self.redis.clone();
        let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.all_key())
            .arg(format!("({now_ms}"))
            .arg("+inf")
            .arg("LIMIT")
            .arg(offset)
            .arg(limit)
            .query_async(&mut con)
            .await?;
        let total: u64 = redis::cmd("ZCOUNT")
            .arg(self.all_key())
            .arg(format!("({now_ms}"))
            .arg("+inf")
            .query_async(&mut con)
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Ok(r) = self.get(&id, now_ms).await {
                out.push(r);
            }
        }
        Ok((out, total))
    }

    /// Remove sessions whose expiry has passed; returns `(id, video)` of each
    /// one this call removed (so with several reapers, each expiry is
    /// reported once).
    pub async fn reap(&self, now_ms: i64) -> Result<Vec<(String, String)>, SessionError> {
        let mut con = self.redis.clone();
        let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.all_key())
            .arg("-inf")
            .arg(now_ms)
            .arg("LIMIT")
            .arg(0)
            .arg(REAP_BATCH)
            .query_async(&mut con)
            .await?;
        let mut reaped = Vec::new();
        for id in ids {
            if let Some(video) = self.remove_if(&id, Some(now_ms)).await? {
                reaped.push((id, video));
            }
        }
        Ok(reaped)
    }
}
