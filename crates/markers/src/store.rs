//! Markers in Redis. Keys (prefix `P`, one video `<id>`):
//!
//! * `P:markers:<id>:index` — sorted set, score = `media_time` (seconds),
//!   member = marker id. Equal times order by id (ULID: creation order),
//!   so two markers in the same second are both kept and ordered.
//! * `P:markers:<id>:data` — hash, marker id → [`Marker`] as JSON.
//! * `P:markers:<id>:changes` — stream, the change feed: one entry per
//!   change, fields `op` (`created`/`updated`/`deleted`), `id`, `json`;
//!   trimmed to about [`limits::CHANGE_STREAM_MAXLEN`] entries. Its last
//!   entry id is the markers' *version*.
//!
//! Every write is one Lua script: the index, the data and the change entry
//! change together or not at all (a batch is all or nothing).

use std::time::Duration;

use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::Value;

use crate::model::{limits, Marker};

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("corrupt marker in Redis: {0}")]
    Corrupt(String),
    #[error("the video holds {have} markers; {adding} more exceed the limit of {max}")]
    TooMany {
        have: usize,
        adding: usize,
        max: usize,
    },
}

/// Id of a change-stream entry (`<ms>-<seq>`), ordered like Redis orders
/// them. Also the SSE event id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ChangeId {
    pub ms: u64,
    pub seq: u64,
}

impl ChangeId {
    pub const ZERO: ChangeId = ChangeId { ms: 0, seq: 0 };
}

impl std::str::FromStr for ChangeId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (ms, seq) = s.trim().split_once('-').ok_or(())?;
        Ok(ChangeId {
            ms: ms.parse().map_err(|_| ())?,
            seq: seq.parse().map_err(|_| ())?,
        })
    }
}

impl std::fmt::Display for ChangeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    Created,
    Updated,
    Deleted,
}

impl ChangeOp {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Created => "created",
            ChangeOp::Updated => "updated",
            ChangeOp::Deleted => "deleted",
        }
    }

    fn parse(s: &str) -> Option<ChangeOp> {
        Some(match s {
            "created" => ChangeOp::Created,
            "updated" => ChangeOp::Updated,
            "deleted" => ChangeOp::Deleted,
            _ => return None,
        })
    }
}

/// One entry of the change feed.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub id: ChangeId,
    pub op: ChangeOp,
    pub marker_id: String,
    /// The marker after the change (`None` for deletes).
    pub marker: Option<Marker>,
}

/// A range query's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    /// Ordered by media time, then id.
    pub markers: Vec<Marker>,
    /// More markers exist in the range beyond [`limits::MAX_RANGE`] (or the
    /// caller's limit).
    pub truncated: bool,
    /// The change id these markers reflect (read atomically with them):
    /// resume the change feed after it and nothing is missed.
    pub version: ChangeId,
}

/// KEYS: index, data, changes. ARGV: maxlen, max markers, op, n, then n ×
/// (id, score, json). Returns the change ids, or an error reply.
const WRITE_SCRIPT: &str = r#"
local maxlen, max_markers, op, n = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
if op == 'created' then
  local have = redis.call('HLEN', KEYS[2])
  if have + n > max_markers then
    return {'toomany', have}
  end
else
  for i = 0, n - 1 do
    if redis.call('HEXISTS', KEYS[2], ARGV[5 + 3 * i]) == 0 then
      return {'missing', ARGV[5 + 3 * i]}
    end
  end
end
local ids = {}
for i = 0, n - 1 do
  local id, score, json = ARGV[5 + 3 * i], ARGV[6 + 3 * i], ARGV[7 + 3 * i]
  redis.call('ZADD', KEYS[1], score, id)
  redis.call('HSET', KEYS[2], id, json)
  ids[#ids + 1] = redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*', 'op', op, 'id', id, 'json', json)
end
return {'ok', ids}
"#;

/// KEYS: index, data, changes. ARGV: maxlen, id. Returns the change id or
/// false when there was no such marker.
const DELETE_SCRIPT: &str = r#"
if redis.call('HDEL', KEYS[2], ARGV[2]) == 0 then
  return false
end
redis.call('ZREM', KEYS[1], ARGV[2])
return redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], '*', 'op', 'deleted', 'id', ARGV[2], 'json', '')
"#;

/// KEYS: index, data, changes. ARGV: from, to, limit. Returns {version,
/// more (0/1), json…}, read in one step.
const RANGE_SCRIPT: &str = r#"
local ids = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[3]) + 1)
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
local version = '0-0'
if #last > 0 then version = last[1][1] end
local more = 0
if #ids > tonumber(ARGV[3]) then
  more = 1
  table.remove(ids)
end
local out = {version, more}
if #ids > 0 then
  local jsons = redis.call('HMGET', KEYS[2], unpack(ids))
  for i = 1, #jsons do out[#out + 1] = jsons[i] end
end
return out
"#;

/// The marker store.
#[derive(Clone)]
pub struct MarkerStore {
    client: redis::Client,
    redis: ConnectionManager,
    prefix: String,
    write: redis::Script,
    delete: redis::Script,
    range: redis::Script,
}

impl MarkerStore {
    /// Connect to `redis_url`; keys are under `prefix:`.
    pub async fn connect(redis_url: &str, prefix: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(redis_url)?;
        let redis = ConnectionManager::new(client.clone()).await?;
        Ok(MarkerStore {
            client,
            redis,
            prefix: prefix.to_string(),
            write: redis::Script::new(WRITE_SCRIPT),
            delete: redis::Script::new(DELETE_SCRIPT),
            range: redis::Script::new(RANGE_SCRIPT),
        })
    }

    fn keys(&self, video_id: &str) -> [String; 3] {
        let base = format!("{}:markers:{video_id}", self.prefix);
        [
            format!("{base}:index"),
            format!("{base}:data"),
            format!("{base}:changes"),
        ]
    }

    /// `PING`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut con = self.redis.clone();
        redis::cmd("PING").query_async::<String>(&mut con).await?;
        Ok(())
    }

    /// Store new markers of one video (all or nothing). Returns the change
    /// id of each, in order.
    pub async fn insert(
        &self,
        video_id: &str,
        markers: &[Marker],
    ) -> Result<Vec<ChangeId>, StoreError> {
        self.write(video_id, ChangeOp::Created, markers).await
    }

    /// Replace existing markers (all or nothing); `Ok(None)` when one of
    /// them does not exist.
    pub async fn update(
        &self,
        video_id: &str,
        markers: &[Marker],
    ) -> Result<Option<Vec<ChangeId>>, StoreError> {
        match self.write(video_id, ChangeOp::Updated, markers).await {
            Ok(ids) => Ok(Some(ids)),
            Err(StoreError::Corrupt(m)) if m == "missing" => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn write(
        &self,
        video_id: &str,
        op: ChangeOp,
        markers: &[Marker],
    ) -> Result<Vec<ChangeId>, StoreError> {
        let [index, data, changes] = self.keys(video_id);
        let mut inv = self.write.prepare_invoke();
        inv.key(index)
            .key(data)
            .key(changes)
            .arg(limits::CHANGE_STREAM_MAXLEN)
            .arg(limits::MAX_MARKERS_PER_VIDEO)
            .arg(op.as_str())
            .arg(markers.len());
        for m in markers {
            let json = serde_json::to_string(m).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            inv.arg(&m.id).arg(score(m.input.media_time)).arg(json);
        }
        let mut con = self.redis.clone();
        let reply: Value = inv.invoke_async(&mut con).await?;
        let Value::Array(items) = reply else {
            return Err(StoreError::Corrupt(format!("write reply {reply:?}")));
        };
        match items.first().map(as_string).as_deref() {
            Some("ok") => match items.get(1) {
                Some(Value::Array(ids)) => ids
                    .iter()
                    .map(|v| {
                        as_string(v)
                            .parse()
                            .map_err(|_| StoreError::Corrupt("change id".into()))
                    })
                    .collect(),
                _ => Err(StoreError::Corrupt("write reply".into())),
            },
            Some("toomany") => Err(StoreError::TooMany {
                have: items
                    .get(1)
                    .map(as_string)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
                adding: markers.len(),
                max: limits::MAX_MARKERS_PER_VIDEO,
            }),
            Some("missing") => Err(StoreError::Corrupt("missing".into())),
            _ => Err(StoreError::Corrupt("write reply".into())),
        }
    }

    /// One marker by id.
    pub async fn get(&self, video_id: &str, marker_id: &str) -> Result<Option<Marker>, StoreError> {
        let [_, data, _] = self.keys(video_id);
        let mut con = self.redis.clone();
        let json: Option<String> = redis::cmd("HGET")
            .arg(data)
            .arg(marker_id)
            .query_async(&mut con)
            .await?;
        json.map(|j| parse_marker(&j)).transpose()
    }

    /// Delete one marker; `Ok(None)` if it did not exist.
    pub async fn delete(
        &self,
        video_id: &str,
        marker_id: &str,
    ) -> Result<Option<ChangeId>, StoreError> {
        let [index, data, changes] = self.keys(video_id);
        let mut con = self.redis.clone();
        let reply: Option<String> = self
            .delete
            .key(index)
            .key(data)
            .key(changes)
            .arg(limits::CHANGE_STREAM_MAXLEN)
            .arg(marker_id)
            .invoke_async(&mut con)
            .await?;
        reply
            .map(|s| {
                s.parse()
                    .map_err(|_| StoreError::Corrupt("change id".into()))
            })
            .transpose()
    }

    /// Markers with `from ≤ media_time ≤ to` (seconds), at most `limit`
    /// (clamped to [`limits::MAX_RANGE`]), and the version they reflect.
    pub async fn range(
        &self,
        video_id: &str,
        from: f64,
        to: f64,
        limit: usize,
    ) -> Result<Range, StoreError> {
        let (jsons, truncated, version) = self.range_json(video_id, from, to, limit).await?;
        let markers = jsons
            .iter()
            .map(|j| parse_marker(j))
            .collect::<Result<_, _>>()?;
        Ok(Range {
            markers,
            truncated,
            version,
        })
    }

    /// Like [`MarkerStore::range`], but the markers as the stored JSON
    /// texts (this crate's own serialisation of [`Marker`]), for answers
    /// that pass them through without parsing.
    pub async fn range_json(
        &self,
        video_id: &str,
        from: f64,
        to: f64,
        limit: usize,
    ) -> Result<(Vec<String>, bool, ChangeId), StoreError> {
        let [index, data, changes] = self.keys(video_id);
        let limit = limit.clamp(1, limits::MAX_RANGE);
        let mut con = self.redis.clone();
        let reply: Vec<Value> = self
            .range
            .key(index)
            .key(data)
            .key(changes)
            .arg(bound(from, "-inf"))
            .arg(bound(to, "+inf"))
            .arg(limit)
            .invoke_async(&mut con)
            .await?;
        let mut it = reply.iter();
        let version = it
            .next()
            .map(as_string)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| StoreError::Corrupt("range version".into()))?;
        let truncated = it.next().map(as_string).as_deref() == Some("1");
        let markers = it
            .filter(|v| !matches!(v, Value::Nil))
            .map(as_string)
            .collect();
        Ok((markers, truncated, version))
    }

    /// The markers' version (last change id; `0-0` if none ever).
    pub async fn version(&self, video_id: &str) -> Result<ChangeId, StoreError> {
        let [_, _, changes] = self.keys(video_id);
        let mut con = self.redis.clone();
        let reply: Value = redis::cmd("XREVRANGE")
            .arg(changes)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut con)
            .await?;
        Ok(parse_entries(&reply)?
            .first()
            .map(|c| c.id)
            .unwrap_or(ChangeId::ZERO))
    }

    /// Whether changes after `after` may have been trimmed from the feed
    /// (the client must reload instead of resuming).
    pub async fn gap_after(&self, video_id: &str, after: ChangeId) -> Result<bool, StoreError> {
        let [_, _, changes] = self.keys(video_id);
        let mut con = self.redis.clone();
        let info: Value = match redis::cmd("XINFO")
            .arg("STREAM")
            .arg(changes)
            .query_async(&mut con)
            .await
        {
            Ok(v) => v,
            // No stream: no change ever, nothing to miss.
            Err(e) if e.code() == Some("ERR") => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let pairs: Vec<(String, Value)> = match info {
            Value::Array(items) => items
                .chunks(2)
                .filter_map(|c| Some((as_string(c.first()?), c.get(1)?.clone())))
                .collect(),
            Value::Map(items) => items.into_iter().map(|(k, v)| (as_string(&k), v)).collect(),
            _ => Vec::new(),
        };
        let deleted = pairs
            .iter()
            .find(|(k, _)| k == "max-deleted-entry-id")
            .and_then(|(_, v)| as_string(v).parse::<ChangeId>().ok())
            .unwrap_or(ChangeId::ZERO);
        Ok(deleted > after)
    }

    /// A change feed on its own connection (blocking reads must not hold up
    /// the shared one).
    pub async fn feed(&self, video_id: &str) -> Result<ChangeFeed, StoreError> {
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(FEED_BLOCK + Duration::from_secs(5)));
        let con = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let [_, _, changes] = self.keys(video_id);
        Ok(ChangeFeed { con, key: changes })
    }
}

/// How long one blocking read of a [`ChangeFeed`] waits.
pub const FEED_BLOCK: Duration = Duration::from_secs(5);

/// A reader of one video's change stream.
pub struct ChangeFeed {
    con: MultiplexedConnection,
    key: String,
}

impl ChangeFeed {
    /// Changes after `after`, oldest first, at most `count`; waits up to
    /// [`FEED_BLOCK`] for the first one (empty on timeout).
    pub async fn next_after(
        &mut self,
        after: ChangeId,
        count: usize,
    ) -> Result<Vec<Change>, StoreError> {
        let reply: Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(FEED_BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(after.to_string())
            .query_async(&mut self.con)
            .await?;
        // [[key, [entries]]] (RESP2) or {key: [entries]} (RESP3); nil on timeout.
        let entries = match reply {
            Value::Nil => return Ok(Vec::new()),
            Value::Array(streams) => match streams.into_iter().next() {
                Some(Value::Array(mut kv)) if kv.len() == 2 => kv.pop().unwrap_or(Value::Nil),
                _ => Value::Nil,
            },
            Value::Map(m) => m.into_iter().next().map(|(_, v)| v).unwrap_or(Value::Nil),
            other => return Err(StoreError::Corrupt(format!("xread {other:?}"))),
        };
        parse_entries(&entries)
    }
}

fn score(t: f64) -> String {
    format!("{t}")
}

fn bound(t: f64, open: &str) -> String {
    if t.is_finite() {
        score(t)
    } else {
        open.to_string()
    }
}

fn as_string(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Okay => "OK".into(),
        _ => String::new(),
    }
}

fn parse_marker(json: &str) -> Result<Marker, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Stream entries `[[id, [field, value, …]], …]`.
fn parse_entries(v: &Value) -> Result<Vec<Change>, StoreError> {
    let Value::Array(entries) = v else {
        return Ok(Vec::new());
    };
    entries
        .iter()
        .map(|e| {
            let Value::Array(parts) = e else {
                return Err(StoreError::Corrupt("stream entry".into()));
            };
            let id: ChangeId = parts
                .first()
                .map(as_string)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| StoreError::Corrupt("stream entry id".into()))?;
            let fields: Vec<String> = match parts.get(1) {
                Some(Value::Array(f)) => f.iter().map(as_string).collect(),
                _ => Vec::new(),
            };
            let get = |name: &str| {
                fields
                    .chunks(2)
                    .find(|c| c[0] == name)
                    .and_then(|c| c.get(1).cloned())
                    .unwrap_or_default()
            };
            let op = ChangeOp::parse(&get("op"))
                .ok_or_else(|| StoreError::Corrupt("stream entry op".into()))?;
            let json = get("json");
            let marker = if op == ChangeOp::Deleted || json.is_empty() {
                None
            } else {
                Some(parse_marker(&json)?)
            };
            Ok(Change {
                id,
                op,
                marker_id: get("id"),
                marker,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_ids_order_like_redis() {
        let a: ChangeId = "1700000000000-0".parse().unwrap();
        let b: ChangeId = "1700000000000-11".parse().unwrap();
        let c: ChangeId = "1700000000001-2".parse().unwrap();
        assert!(a < b && b < c);
        assert_eq!(b.to_string(), "1700000000000-11");
        assert!("x".parse::<ChangeId>().is_err());
        assert!("1-".parse::<ChangeId>().is_err());
    }
}
