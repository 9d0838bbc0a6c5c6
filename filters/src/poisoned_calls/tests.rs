use super::*;
use crate::content_book::ContentBook;
use crate::envelope::EnvelopeFilter;
use crate::testutil::{headers, policy_with};

fn concealed_by(book: &ContentBook, extra: &str, body: &str) -> Option<String> {
    let p = policy_with(extra);
    let h = headers(&[]);
    let mut ex = Exchange::new(&p, "POST", "/mcp", &h, body.as_bytes());
    ex.content_book = Some(book);
    assert!(matches!(EnvelopeFilter.check(&mut ex), Decision::Continue));
    assert!(matches!(
        PoisonedCallFilter.check(&mut ex),
        Decision::Continue
    ));
    ex.concealed.map(|c| c.rule)
}

const HIDE: &str = "[content.poisoning]\naction = \"hide\"\n";
const CALL: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{}}}"#;

#[test]
fn calls_of_hidden_definitions_are_concealed() {
    let book = ContentBook::new();
    assert_eq!(concealed_by(&book, HIDE, CALL), None);
    book.hide(ListedKind::Tool, "add", "instruction-tags");
    assert_eq!(
        concealed_by(&book, HIDE, CALL).as_deref(),
        Some("content.poisoning.rules.instruction-tags")
    );
    // A prompt of the same name is another definition.
    let get = r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"add"}}"#;
    assert_eq!(concealed_by(&book, HIDE, get), None);
    // Shadow mode hides nothing.
    let shadow = "[content.poisoning]\naction = \"hide\"\nmode = \"shadow\"\n";
    assert_eq!(concealed_by(&book, shadow, CALL), None);
    book.unhide(ListedKind::Tool, "add");
    assert_eq!(concealed_by(&book, HIDE, CALL), None);
}
