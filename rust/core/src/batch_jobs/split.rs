//! Cutting rows into batch files (or batch requests) within a provider's limits.

/// Groups JSONL rows (each ending with `\n`) into chunks of at most `max_rows` rows and
/// `max_bytes` bytes, in order. A single row larger than `max_bytes` goes alone into a chunk
/// (the API then says what is wrong with it).
pub fn split_into_files(rows: Vec<Vec<u8>>, max_rows: usize, max_bytes: usize) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut count = 0;
    for row in rows {
        let full = count >= max_rows || (count > 0 && current.len() + row.len() > max_bytes);
        if full {
            files.push(std::mem::take(&mut current));
            count = 0;
        }
        current.extend_from_slice(&row);
        count += 1;
    }
    if count > 0 {
        files.push(current);
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let files = split_into_files(rows(50_001, 10), 50_000, 200 * 1024 * 1024);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].len(), 500_000);
        assert_eq!(files[1].len(), 10);
    }

    #[test]
    fn split_at_the_byte_limit() {
        let files = split_into_files(rows(10, 100), 1000, 250);
        assert_eq!(files.iter().map(Vec::len).collect::<Vec<_>>(), vec![200; 5]);
        assert!(split_into_files(Vec::new(), 10, 10).is_empty());
        assert_eq!(split_into_files(rows(2, 300), 10, 250).len(), 2);
    }
}
