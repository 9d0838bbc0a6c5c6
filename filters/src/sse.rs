//! Incremental Server-Sent Events parser (pure, no I/O: the proxy feeds it
//! upstream body chunks; the fuzz target `sse` checks it).
//!
//! Upstream body chunks do not follow event boundaries, so the relay feeds
//! every chunk here and gets back the events that completed. Memory is
//! bounded: an event larger than the limit is skipped, not buffered.

/// One complete SSE event (only the fields mcpgate inspects).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    /// `data:` lines joined with `\n`.
    pub data: String,
}

/// Parser state carried across chunks.
pub struct SseParser {
    line: Vec<u8>,
    current: SseEvent,
    has_fields: bool,
    event_bytes: usize,
    max_event_bytes: usize,
    overflowed: bool,
    last_was_cr: bool,
}

impl SseParser {
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            line: Vec::new(),
            current: SseEvent::default(),
            has_fields: false,
            event_bytes: 0,
            max_event_bytes,
            overflowed: false,
            last_was_cr: false,
        }
    }

    /// Feeds a chunk; calls `on_event` for each event completed by it.
    pub fn feed(&mut self, chunk: &[u8], mut on_event: impl FnMut(SseEvent)) {
        for &b in chunk {
            if self.last_was_cr && b == b'\n' {
                self.last_was_cr = false;
                continue; // second half of a CRLF
            }
            self.last_was_cr = b == b'\r';
            if b == b'\n' || b == b'\r' {
                self.end_line(&mut on_event);
                continue;
            }
            self.event_bytes += 1;
            if self.event_bytes > self.max_event_bytes {
                self.overflowed = true;
                self.line.clear();
                continue;
            }
            self.line.push(b);
        }
    }

    fn end_line(&mut self, on_event: &mut impl FnMut(SseEvent)) {
        if self.line.is_empty() {
            let event = std::mem::take(&mut self.current);
            if self.has_fields && !self.overflowed {
                on_event(event);
            }
            self.has_fields = false;
            self.overflowed = false;
            self.event_bytes = 0;
            return;
        }
        let line = std::mem::take(&mut self.line);
        if self.overflowed || line.first() == Some(&b':') {
            return; // skipped event or comment
        }
        let text = String::from_utf8_lossy(&line);
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (text.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.has_data() {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
            }
            "id" => self.current.id = Some(value.to_string()),
            "event" => self.current.event = Some(value.to_string()),
            _ => {}
        }
        self.has_fields = true;
        self.line = line;
        self.line.clear();
    }

    fn has_data(&self) -> bool {
        !self.current.data.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&[u8]], max: usize) -> Vec<SseEvent> {
        let mut p = SseParser::new(max);
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, |e| out.push(e));
        }
        out
    }

    #[test]
    fn events_split_across_chunks() {
        let evs = parse(
            &[
                b"id: 1\nda",
                b"ta: {\"a\":1}\n",
                b"\nevent: message\r\ndata: x\r\n\r\n",
            ],
            1024,
        );
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].id.as_deref(), Some("1"));
        assert_eq!(evs[0].data, "{\"a\":1}");
        assert_eq!(evs[1].event.as_deref(), Some("message"));
        assert_eq!(evs[1].data, "x");
    }

    #[test]
    fn comments_priming_and_oversize() {
        let evs = parse(&[b": keepalive\n\nid: p\ndata:\n\n"], 1024);
        assert_eq!(
            evs,
            vec![SseEvent {
                id: Some("p".into()),
                event: None,
                data: String::new()
            }]
        );
        let evs = parse(&[b"data: 0123456789\n\ndata: ok\n\n"], 8);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].data, "ok");
    }
}
