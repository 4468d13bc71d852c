//! The real binary, as a reader runs it: the checksum on every preset,
//! exit 2 for bad arguments, exit 1 naming the order of a panicking cook.

#[test]
fn the_binary_honours_the_contract() {
    restaurant::conformance::check_binary(env!(
        "CARGO_BIN_EXE_parallelism-crossbeam"
    ));
}
