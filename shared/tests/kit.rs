//! The conformance kit itself fails broken models: a kit that passed
//! everything would prove nothing.

use std::panic;

use restaurant::conformance;
use restaurant::{BoxError, Cooks, Model, Order, Plate};

fn loses_the_last_order(
    orders: Vec<Order>,
    cooks: usize,
) -> Result<Vec<Plate>, BoxError> {
    let mut plates = restaurant::sequential::serve(orders, cooks)?;
    plates.pop();
    Ok(plates)
}

/// Catches the cook's panic and carries on as if nothing happened.
fn swallows_panics(
    orders: Vec<Order>,
    _cooks: usize,
) -> Result<Vec<Plate>, BoxError> {
    let mut plates = Vec::new();
    for order in orders {
        let one = restaurant::sequential::serve(vec![order], 1);
        plates.extend(one.unwrap_or_default());
    }
    Ok(plates)
}

/// Reports the panic without saying which order.
fn vague_about_panics(
    orders: Vec<Order>,
    cooks: usize,
) -> Result<Vec<Plate>, BoxError> {
    restaurant::sequential::serve(orders, cooks)
        .map_err(|_| "a cook panicked".into())
}

fn model(serve: restaurant::cli::Serve) -> Model {
    Model {
        name: "broken",
        about: "a deliberately broken model",
        cooks: Cooks::One,
        serve,
    }
}

#[test]
fn a_model_that_loses_orders_fails_the_kit() {
    let broken = model(loses_the_last_order);
    let failed = panic::catch_unwind(|| conformance::check(&broken));
    assert!(failed.is_err());
}

#[test]
fn a_model_that_swallows_a_panic_fails_the_kit() {
    let broken = model(swallows_panics);
    let failed = panic::catch_unwind(|| conformance::check_panic(&broken));
    assert!(failed.is_err());
}

#[test]
fn a_model_that_does_not_name_the_order_fails_the_kit() {
    let broken = model(vague_about_panics);
    let failed = panic::catch_unwind(|| conformance::check_panic(&broken));
    assert!(failed.is_err());
}

#[test]
fn the_kit_covers_every_preset_seed_size_and_cook_count() {
    let several = Model {
        cooks: Cooks::Cores("threads"),
        ..model(loses_the_last_order)
    };
    let cases = conformance::cases(&several);
    assert_eq!(cases.len(), 4 * 2 * 4 * 2);
    let one = conformance::cases(&model(loses_the_last_order));
    assert_eq!(one.len(), 4 * 2 * 4);
}
