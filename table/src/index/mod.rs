//! The bucket index: a record goes to bucket `hash(key fields) mod N` of its partition, and each
//! bucket is one file group whose id starts with the 8-digit bucket number. Finding a record's
//! file group needs no I/O. The hash is Hudi's (`BucketIdentifier`), so Java writers configured
//! with the same bucket count place records in the same file groups. The [`global`] index finds
//! which partition a key is stored in.

pub mod global;

/// Java's `String.hashCode()`: over UTF-16 code units, wrapping.
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// Java's `List<String>.hashCode()`.
fn java_list_hash<'a>(items: impl Iterator<Item = &'a str>) -> i32 {
    items.fold(1i32, |h, s| {
        h.wrapping_mul(31).wrapping_add(java_string_hash(s))
    })
}

/// The values a bucket hash is taken over, as Hudi's `BucketIdentifier` extracts them: the whole
/// key when it has no `:`, else the values of the `field:value` pairs whose field is a hash field.
/// Like Hudi, a simple key that contains `:` yields no values (and lands in bucket `1 % N`): that
/// is what keeps Java writers of the same table agreeing with us.
/// (An iterator: this runs for every record written.)
fn hash_key_values<'a>(
    record_key: &'a str,
    hash_fields: &'a [String],
) -> impl Iterator<Item = &'a str> {
    let simple = !record_key.contains(':');
    let pairs = record_key
        .split(',')
        .take_while(move |_| !simple)
        .filter_map(|part| part.split_once(':'))
        .filter(|(field, _)| hash_fields.iter().any(|f| f == field))
        .map(|(_, value)| value);
    simple.then_some(record_key).into_iter().chain(pairs)
}

/// The bucket of a record key, hashing the values of `hash_fields` (the record key fields).
pub fn bucket_id(record_key: &str, hash_fields: &[String], buckets: u32) -> u32 {
    let hash = java_list_hash(hash_key_values(record_key, hash_fields));
    ((hash & i32::MAX) as u32) % buckets.max(1)
}

/// A new file group id for a bucket: the bucket number, zero-padded to 8 digits, replaces the
/// first 8 characters of a random UUID; `-0` marks the first file of the group.
pub fn new_bucket_file_id(bucket: u32) -> crate::FileId {
    let uuid = uuid::Uuid::new_v4().to_string();
    crate::FileId::from_storage(format!("{bucket:08}{}-0", &uuid[8..]))
}

/// The bucket number of a bucket-index file id, if it has one.
pub fn bucket_of_file_id(file_id: &str) -> Option<u32> {
    let prefix = file_id.get(..8)?;
    if prefix.bytes().all(|b| b.is_ascii_digit()) && file_id.as_bytes().get(8) == Some(&b'-') {
        prefix.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hashes() {
        // Values of String.hashCode() and List.of(...).hashCode() in Java.
        assert_eq!(java_string_hash("id1"), 104_054);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_list_hash(["id1"].into_iter()), 31 + 104_054);
        let fields = ["id".to_string(), "name".to_string()];
        // Hudi's worked examples: List("id1").hashCode() = 104085, List("1","a").hashCode() = 2577.
        assert_eq!(bucket_id("id1", &fields[..1], 4), 104_085 % 4);
        assert_eq!(bucket_id("id:1,name:a", &fields, 4), 2577 % 4);
        assert_eq!(bucket_id("id:1,name:a", &fields, 1000), 577);
        // Java's quirk: a simple key with a colon hashes an empty list (hash 1).
        assert_eq!(bucket_id("10:30", &fields[..1], 4), 1);
    }

    #[test]
    fn bucket_file_ids() {
        let id = new_bucket_file_id(19);
        assert!(id.starts_with("00000019-") && id.ends_with("-0"), "{id}");
        assert_eq!(id.len(), 38);
        assert_eq!(bucket_of_file_id(&id), Some(19));
        assert_eq!(
            bucket_of_file_id("d0304c53-6fd2-4b7a-a9d6-5ff632f79224-0"),
            None
        );
    }
}
