//! A message that arrives in chunks: the request body, an upstream's JSON
//! answer. Nearly always one chunk, kept as it came (no copy); from the
//! second chunk on, gathered into one buffer.

use bytes::{Bytes, BytesMut};

#[derive(Debug, Default)]
pub(crate) struct Gathered {
    first: Option<Bytes>,
    rest: BytesMut,
}

impl Gathered {
    /// Bytes held so far.
    pub fn len(&self) -> usize {
        self.first.as_ref().map_or(self.rest.len(), Bytes::len)
    }

    /// Adds `chunk`; `expected` (the whole message's length, when known)
    /// sizes the buffer once a second chunk comes, so it grows only once.
    pub fn push(&mut self, chunk: Bytes, expected: usize) {
        if let Some(first) = self.first.take() {
            self.rest.reserve(expected.max(first.len() + chunk.len()));
            self.rest.extend_from_slice(&first);
            self.rest.extend_from_slice(&chunk);
        } else if self.rest.is_empty() {
            self.first = Some(chunk);
        } else {
            self.rest.extend_from_slice(&chunk);
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        self.first.as_deref().unwrap_or(&self.rest)
    }

    pub fn clear(&mut self) {
        self.first = None;
        self.rest.clear();
    }

    pub fn freeze(self) -> Bytes {
        self.first.unwrap_or_else(|| self.rest.freeze())
    }
}

#[cfg(test)]
mod tests;
