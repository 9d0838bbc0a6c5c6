use bytes::Bytes;

use super::Gathered;

#[test]
fn one_chunk_is_kept_as_it_came() {
    let chunk = Bytes::from_static(b"{\"id\":1}");
    let mut g = Gathered::default();
    g.push(chunk.clone(), 0);
    assert_eq!(g.len(), chunk.len());
    assert_eq!(g.as_slice(), &chunk[..]);
    let whole = g.freeze();
    assert_eq!(whole.as_ptr(), chunk.as_ptr(), "no copy");
}

#[test]
fn more_chunks_are_gathered_in_order() {
    let mut g = Gathered::default();
    for part in ["ab", "", "cd", "e"] {
        g.push(Bytes::from(part), 5);
    }
    assert_eq!(g.len(), 5);
    assert_eq!(g.as_slice(), b"abcde");
    g.clear();
    assert_eq!(g.len(), 0);
    g.push(Bytes::from_static(b"x"), 0);
    assert_eq!(g.freeze(), Bytes::from_static(b"x"));
}
