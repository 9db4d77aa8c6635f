//! `.hoodie_partition_metadata`: a small properties file in every partition directory (and in the
//! base path of a non-partitioned table). Spark's file-system listing finds partitions by it.

use crate::timeline::InstantTime;

pub const PARTITION_METAFILE: &str = ".hoodie_partition_metadata";

/// The path and contents of the metafile of a partition first written at `instant`.
pub fn partition_metafile(partition: &str, instant: &InstantTime) -> (String, String) {
    let depth = if partition.is_empty() {
        0
    } else {
        partition.split('/').count()
    };
    let path = super::file_path(partition, PARTITION_METAFILE);
    (
        path,
        format!("#partition metadata\ncommitTime={instant}\npartitionDepth={depth}\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_path_segments() {
        let instant: InstantTime = "20240418173550988".parse().expect("valid");
        let (path, text) = partition_metafile("byteField=10/shortField=300", &instant);
        assert_eq!(
            path,
            "byteField=10/shortField=300/.hoodie_partition_metadata"
        );
        assert!(text.ends_with("commitTime=20240418173550988\npartitionDepth=2\n"));
        assert_eq!(
            partition_metafile("", &instant).0,
            ".hoodie_partition_metadata"
        );
    }
}
