//! Damaged files: torn writes become `Corrupt` blocks and the walk resumes at the next block;
//! damage inside a whole block is an error naming its offset; nothing panics.

use super::*;

fn corrupt_at(block: &LogBlock) -> Option<u64> {
    match &block.content {
        BlockContent::Corrupt { offset, .. } => Some(*offset),
        _ => None,
    }
}

#[test]
fn a_truncated_block_is_corrupt_at_every_cut() -> Result<()> {
    for name in ALL_FIXTURES {
        let bytes = fixture(name)?;
        for cut in 1..bytes.len() {
            let blocks = read_log_blocks(&bytes[..cut])?;
            assert_eq!(blocks.len(), 1, "{name} cut at {cut}");
            assert_eq!(corrupt_at(&blocks[0]), Some(0), "{name} cut at {cut}");
            assert!(blocks[0].header.is_empty());
        }
    }
    Ok(())
}

#[test]
fn a_torn_last_block_follows_the_good_ones() -> Result<()> {
    let good = fixture(DELETE)?;
    let torn = fixture(AVRO_DATA)?;
    for cut in [1, 6, 13, 14, 100, torn.len() - 9, torn.len() - 1] {
        let mut file = good.clone();
        file.extend_from_slice(&torn[..cut]);
        let blocks = read_log_blocks(&file)?;
        assert_eq!(blocks.len(), 2, "cut at {cut}");
        assert_eq!(blocks[0], single_block(DELETE)?);
        assert_eq!(
            corrupt_at(&blocks[1]),
            Some(good.len() as u64),
            "cut at {cut}"
        );
    }
    Ok(())
}

#[test]
fn the_walk_resumes_at_the_next_magic() -> Result<()> {
    let first = fixture(ROLLBACK)?;
    let torn = fixture(DELETE)?;
    let last = fixture(AVRO_DATA)?;
    let mut file = first.clone();
    file.extend_from_slice(&torn[..500]);
    file.extend_from_slice(&last);
    let blocks = read_log_blocks(&file)?;
    assert_eq!(blocks.len(), 3);
    assert_eq!(blocks[0], single_block(ROLLBACK)?);
    assert_eq!(corrupt_at(&blocks[1]), Some(first.len() as u64));
    assert_eq!(blocks[2], single_block(AVRO_DATA)?);

    // Bytes that are no block at all, before a good one.
    let mut file = b"garbage".to_vec();
    file.extend_from_slice(&first);
    let blocks = read_log_blocks(&file)?;
    assert_eq!(corrupt_at(&blocks[0]), Some(0));
    assert_eq!(blocks[1], single_block(ROLLBACK)?);
    Ok(())
}

#[test]
fn disagreeing_lengths_make_a_block_corrupt() -> Result<()> {
    let bytes = fixture(ROLLBACK)?;
    // Block length one too long, then the trailing total length one too short.
    let mut longer = bytes.clone();
    longer[13] += 1;
    longer.push(0);
    let mut shorter_total = bytes.clone();
    let last = shorter_total.len() - 1;
    shorter_total[last] -= 1;
    // A whole block followed by bytes that are not a block magic (Java's check too).
    let mut trailing = bytes.clone();
    trailing.extend_from_slice(b"xxxxxxxx");
    for file in [longer, shorter_total, trailing] {
        let blocks = read_log_blocks(&file)?;
        assert_eq!(corrupt_at(&blocks[0]), Some(0));
    }
    Ok(())
}

#[test]
fn damage_inside_a_whole_block_is_an_error_naming_its_offset() -> Result<()> {
    let good = fixture(ROLLBACK)?;
    let avro = fixture(AVRO_DATA)?;
    // The length of the only record, 228, says 200: the datum no longer fits.
    let length_at = avro.len() - 12 - 228 - 4;
    assert_eq!(avro[length_at..length_at + 4], 228i32.to_be_bytes());
    let mut damaged = avro.clone();
    damaged[length_at + 3] = 200;
    let mut file = good.clone();
    file.extend_from_slice(&damaged);
    match read_log_blocks(&file) {
        Err(Error::LogBlockDecode { offset, reason }) => {
            assert_eq!(offset, good.len() as u64);
            assert!(reason.contains("AVRO_DATA_BLOCK"), "{reason}");
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    // An unknown block type inside intact framing.
    let mut unknown = good.clone();
    unknown[21] = 9;
    assert!(matches!(
        read_log_blocks(&unknown),
        Err(Error::LogBlockDecode { offset: 0, .. })
    ));
    Ok(())
}

/// Random byte damage to every fixture: any outcome but a panic. Deterministic (xorshift,
/// seed printed) so a failure reproduces.
#[test]
fn random_damage_never_panics() -> Result<()> {
    let seed: u64 = 0x9e37_79b9_7f4a_7c15;
    println!("seed {seed:#x}");
    let mut state = seed;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut corrupt, mut errors) = (0, 0);
    for name in ALL_FIXTURES {
        let bytes = fixture(name)?;
        for _ in 0..400 {
            let mut damaged = bytes.clone();
            for _ in 0..1 + next() % 3 {
                let at = (next() % damaged.len() as u64) as usize;
                damaged[at] = next() as u8;
            }
            match read_log_blocks(&damaged) {
                Ok(blocks) if blocks.iter().any(LogBlock::is_corrupt) => corrupt += 1,
                Ok(_) => {}
                Err(Error::LogBlockDecode { .. }) => errors += 1,
                Err(e) => panic!("unexpected error kind: {e}"),
            }
        }
    }
    println!("{corrupt} corrupt, {errors} errors");
    assert!(corrupt > 0 && errors > 0);
    Ok(())
}
