//! BDAT (RFC 3030 CHUNKING): content in counted chunks, the last one marked `LAST`.

use super::{Flow, Session};
use crate::data::{self, Content};
use std::io;

impl Session {
    /// RFC 3030 BDAT. The chunk's octets are always read, whatever the reply, so that the
    /// session stays in step with the client.
    pub(super) async fn bdat(&mut self, size: u64, last: bool) -> io::Result<Flow> {
        let refused = self.helo.is_none()
            || self
                .tx
                .as_ref()
                .is_none_or(|t| t.rcpts.is_empty() && t.remote.is_empty());
        let max = self.max_size();
        let timeout = self.timeout;
        let budget = self.ctx.content_budget.clone();
        let content = match self.tx.as_mut().filter(|_| !refused) {
            Some(tx) => {
                let buf = tx.chunks.get_or_insert_with(Vec::new);
                let room = tx.room.get_or_insert_with(|| budget.reserve());
                data::read_chunk(&mut self.io, size, Some((buf, room)), max, timeout).await?
            }
            None => data::read_chunk(&mut self.io, size, None, 0, timeout).await?,
        };
        match content {
            Content::Eof => {
                tracing::info!(peer = %self.peer.addr, "client disconnected during BDAT: nothing stored");
                self.tx = None;
                return Ok(Flow::Close);
            }
            Content::Timeout => {
                self.tx = None;
                return Ok(self.timed_out());
            }
            _ if refused => {
                return Ok(self.content_allowed().unwrap_or(Flow::Continue));
            }
            Content::NoRoom => return Ok(self.no_room()),
            Content::TooBig => {
                self.tx = None;
                return Ok(self.ok(
                    552,
                    "5.3.4",
                    "Message size exceeds fixed maximum message size",
                ));
            }
            Content::Complete(_) => {}
        }
        if !last {
            return Ok(self.ok(250, "2.0.0", &format!("{size} octets received")));
        }
        let body = self
            .tx
            .as_mut()
            .and_then(|t| t.chunks.take())
            .unwrap_or_default();
        let body = data::normalize_line_ends(body);
        if body.len() as u64 > max {
            self.tx = None;
            return Ok(self.ok(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            ));
        }
        self.bad_commands = 0;
        self.deliver(body).await;
        Ok(Flow::Continue)
    }
}
