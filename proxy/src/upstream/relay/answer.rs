//! The members of one JSON-RPC message from an upstream that the relay
//! looks at, read without building the whole message: its `result`, where
//! a tool's whole output is, is skimmed for `isError` and `task` and not
//! copied. (Parsing every answer into a `Value` cost about 2.5 % of a
//! worker's CPU at 4 KB answers, plus the allocations of the tree.)
//!
//! What is read matches what a `Value` would give: a repeated member
//! counts as its last occurrence, and a message that is not an object
//! yields nothing.

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// The top-level members the relay reads (each small, except `result`).
#[derive(Debug, Default)]
pub(super) struct Message {
    pub method: Option<Value>,
    pub params: Option<Value>,
    pub id: Option<Value>,
    pub error: Option<Value>,
    pub result: Option<ResultFacts>,
}

/// What the relay reads of `result`; empty when `result` is not an object.
#[derive(Debug, Default)]
pub(super) struct ResultFacts {
    pub is_error: Option<Value>,
    pub task: Option<Value>,
}

impl Message {
    /// `None` when `json` is not a JSON object.
    pub fn parse(json: &[u8]) -> Option<Self> {
        serde_json::from_slice(json).ok()
    }
}

#[derive(Deserialize)]
#[serde(field_identifier)]
enum Member {
    #[serde(rename = "method")]
    Method,
    #[serde(rename = "params")]
    Params,
    #[serde(rename = "id")]
    Id,
    #[serde(rename = "error")]
    Error,
    #[serde(rename = "result")]
    Result,
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(field_identifier)]
enum ResultMember {
    #[serde(rename = "isError")]
    IsError,
    #[serde(rename = "task")]
    Task,
    #[serde(other)]
    Other,
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(MessageVisitor)
    }
}

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Message;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON-RPC message")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message, A::Error> {
        let mut m = Message::default();
        while let Some(member) = map.next_key::<Member>()? {
            match member {
                Member::Method => m.method = Some(map.next_value()?),
                Member::Params => m.params = Some(map.next_value()?),
                Member::Id => m.id = Some(map.next_value()?),
                Member::Error => m.error = Some(map.next_value()?),
                Member::Result => m.result = Some(map.next_value()?),
                Member::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(m)
    }
}

impl<'de> Deserialize<'de> for ResultFacts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ResultVisitor)
    }
}

/// Takes any JSON value: only an object has facts.
struct ResultVisitor;

impl<'de> Visitor<'de> for ResultVisitor {
    type Value = ResultFacts;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ResultFacts, A::Error> {
        let mut r = ResultFacts::default();
        while let Some(member) = map.next_key::<ResultMember>()? {
            match member {
                ResultMember::IsError => r.is_error = Some(map.next_value()?),
                ResultMember::Task => r.task = Some(map.next_value()?),
                ResultMember::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(r)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ResultFacts, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(ResultFacts::default())
    }

    fn visit_bool<E>(self, _: bool) -> Result<ResultFacts, E> {
        Ok(ResultFacts::default())
    }

    fn visit_i64<E>(self, _: i64) -> Result<ResultFacts, E> {
        Ok(ResultFacts::default())
    }

    fn visit_u64<E>(self, _: u64) -> Result<ResultFacts, E> {
        Ok(ResultFacts::default())
    }

    fn visit_f64<E>(self, _: f64) -> Result<ResultFacts, E> {
        Ok(ResultFacts::default())
    }

    fn visit_str<E>(self, _: &str) -> Result<ResultFacts, E> {
        Ok(ResultFacts::default())
    }

    fn visit_unit<E>(self) -> Result<ResultFacts, E> {
        Ok(ResultFacts::default())
    }
}

#[cfg(test)]
mod tests;
