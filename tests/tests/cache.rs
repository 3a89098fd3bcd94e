//! The key/value cache: a decoding loop that appends positions and reads the cache in place,
//! each step against full attention over the prefix; and every error, with nothing written.

use attn_runtime::{CacheError, KvCache, attention};
use attn_tests::{Problem, Rng, reference};

attention! {
    /// One decode step per batch entry over the cache: 2 entries, 2 heads.
    #[attn(valid_lengths, causal(bottom_right))]
    fn step<q: [2, 2, 1, 8], k: [2, 2, 32, 8], v: [2, 2, 32, 8]>;
}

type Cache = KvCache<f32, 2, 2, 32, 8, 8>;

#[test]
fn a_decoding_loop_matches_attention_over_each_prefix() {
    let mut rng = Rng::new(11);
    let mut cache = Cache::new();
    // The whole sequences, [entry][head][position][depth], appended a piece at a time.
    let keys = rng.tensor::<[[[[f32; 8]; 32]; 2]; 2]>(1.0);
    let values = rng.tensor::<[[[[f32; 8]; 32]; 2]; 2]>(1.0);
    let piece = |source: &[[[[f32; 8]; 32]; 2]; 2], entry: usize, at: usize| {
        [0, 1].map(|head| [source[entry][head][at]])
    };
    for position in 0..20 {
        // Entry 0 gets a position every step; entry 1 every other step, two at once.
        cache
            .append(0, &piece(&keys, 0, position), &piece(&values, 0, position))
            .unwrap();
        if position % 2 == 1 {
            let two = |source: &[[[[f32; 8]; 32]; 2]; 2]| {
                [0, 1].map(|head| [source[1][head][position - 1], source[1][head][position]])
            };
            cache.append(1, &two(&keys), &two(&values)).unwrap();
        }
        let q = rng.tensor::<[[[[f32; 8]; 1]; 2]; 2]>(1.0);
        let out = step(&q, cache.keys(), cache.values(), cache.lengths()).unwrap();
        for entry in 0..2 {
            let length = cache.lengths()[entry];
            for head in 0..2 {
                let problem = Problem::with_default_scale(1, 1, length, 8, 8);
                let prefix = |source: &[[[[f32; 8]; 32]; 2]; 2]| {
                    source[entry][head][..length].as_flattened().to_vec()
                };
                let expected = reference(
                    &problem,
                    &q[entry][head][0],
                    &prefix(&keys),
                    &prefix(&values),
                );
                for (x, e) in out[entry][head][0].iter().zip(&expected) {
                    assert!(
                        (f64::from(*x) - e).abs() <= 1e-5 * (1.0 + e.abs()),
                        "step {position}, entry {entry}, head {head}: {x} against {e}"
                    );
                }
            }
        }
    }
    assert_eq!(cache.lengths(), &[20, 20]);
}

#[test]
fn a_full_cache_an_empty_append_and_a_missing_entry_are_errors_that_write_nothing() {
    let mut cache = KvCache::<f32, 2, 1, 4, 2, 2>::new();
    cache.append(0, &[[[1.0; 2]; 3]], &[[[1.0; 2]; 3]]).unwrap();
    let error = cache
        .append(0, &[[[9.0; 2]; 2]], &[[[9.0; 2]; 2]])
        .unwrap_err();
    assert_eq!(
        error,
        CacheError::Full {
            entry: 0,
            length: 3,
            capacity: 4,
            offered: 2
        }
    );
    assert_eq!(
        error.to_string(),
        "batch entry 0 holds 3 of its 4 positions: 2 more do not fit"
    );
    assert_eq!(cache.lengths(), &[3, 0]);
    assert_eq!(
        cache.keys()[0][0][3],
        [0.0; 2],
        "nothing written past the length"
    );
    assert_eq!(
        cache.append::<0>(1, &[[]], &[[]]).unwrap_err(),
        CacheError::NoPositions
    );
    let error = cache
        .append(2, &[[[1.0; 2]; 1]], &[[[1.0; 2]; 1]])
        .unwrap_err();
    assert_eq!(
        error,
        CacheError::NoEntry {
            entry: 2,
            entries: 2
        }
    );
    assert_eq!(
        error.to_string(),
        "there is no batch entry 2: the cache has 2 entries"
    );
    // The last position fits exactly; clearing starts the entry over.
    cache.append(0, &[[[2.0; 2]; 1]], &[[[2.0; 2]; 1]]).unwrap();
    assert_eq!(cache.lengths(), &[4, 0]);
    cache.clear(0).unwrap();
    assert_eq!(cache.lengths(), &[0, 0]);
    assert_eq!(
        cache.clear(5).unwrap_err(),
        CacheError::NoEntry {
            entry: 5,
            entries: 2
        }
    );
}
