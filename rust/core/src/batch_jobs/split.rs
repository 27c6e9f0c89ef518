//! Cutting rows into batch files (or batch requests) within a provider's limits.

/// Groups rows (without their line ends) into the rows of files of at most `max_rows` rows
/// and `max_bytes` bytes once each row gets its `\n`, in order; empty rows are dropped. A
/// single row larger than `max_bytes` goes alone.
pub fn chunk_rows(rows: Vec<Vec<u8>>, max_rows: usize, max_bytes: usize) -> Vec<Vec<Vec<u8>>> {
    let mut chunks = Vec::new();
    let mut current: Vec<Vec<u8>> = Vec::new();
    let mut size = 0;
    for mut row in rows {
        while row.last().is_some_and(|byte| matches!(byte, b'\n' | b'\r')) {
            row.pop();
        }
        if row.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let full =
            current.len() >= max_rows || (!current.is_empty() && size + row.len() + 1 > max_bytes);
        if full {
            chunks.push(std::mem::take(&mut current));
            size = 0;
        }
        size += row.len() + 1;
        current.push(row);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// A file of rows: each followed by `\n`.
pub fn jsonl(rows: &[Vec<u8>]) -> Vec<u8> {
    let mut content = Vec::with_capacity(rows.iter().map(|row| row.len() + 1).sum());
    for row in rows {
        content.extend_from_slice(row);
        content.push(b'\n');
    }
    content
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_count_the_line_ends_and_drop_empty_rows() {
        let rows: Vec<Vec<u8>> = (0..5).map(|_| b"{\"a\":1}\n".to_vec()).collect();
        // 8 bytes per row with its line end: two rows fit in 16 bytes, not three.
        let chunks = chunk_rows(rows.clone(), 100, 16);
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![2, 2, 1]
        );
        assert_eq!(jsonl(&chunks[0]), b"{\"a\":1}\n{\"a\":1}\n".to_vec());
        assert_eq!(chunk_rows(rows, 3, 1000).len(), 2);
        assert!(chunk_rows(vec![b"  \n".to_vec()], 3, 1000).is_empty());
    }

    fn rows(count: usize, size: usize) -> Vec<Vec<u8>> {
        (0..count)
            .map(|_| {
                let mut row = vec![b'x'; size - 1];
                row.push(b'\n');
                row
            })
            .collect()
    }

    #[test]
    fn split_at_the_row_limit() {
        let files: Vec<Vec<u8>> = chunk_rows(rows(50_001, 10), 50_000, 200 * 1024 * 1024)
            .iter()
            .map(|chunk| jsonl(chunk))
            .collect();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].len(), 500_000);
        assert_eq!(files[1].len(), 10);
    }

    #[test]
    fn split_at_the_byte_limit() {
        let files: Vec<Vec<u8>> = chunk_rows(rows(10, 100), 1000, 250)
            .iter()
            .map(|chunk| jsonl(chunk))
            .collect();
        assert_eq!(files.iter().map(Vec::len).collect::<Vec<_>>(), vec![200; 5]);
        assert!(chunk_rows(Vec::new(), 10, 10).is_empty());
        assert_eq!(chunk_rows(rows(2, 300), 10, 250).len(), 2);
    }
}
