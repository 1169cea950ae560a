//! A worker never stops silently: a consumer deleted under a running
//! detector ends it with an error its caller sees.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use awfdrs_bus::Stage;
use awfdrs_tests::{World, cleanup, eventually};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn a_detector_whose_consumer_is_deleted_under_it_fails_instead_of_stopping_silently() {
    let world = World::new().await;
    let ctx = world.context(&[]).await;
    let shutdown = CancellationToken::new();
    let detector = tokio::spawn(awfdrs_detector::run(ctx.clone(), shutdown.clone()));
    eventually(
        Duration::from_secs(20),
        "the detector's consumer",
        || async { ctx.bus.consumer_backlog(Stage::Detector).await.ok() },
    )
    .await;

    // Deleting the stream deletes its consumers with it.
    ctx.bus.delete_streams().await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(60), detector)
        .await
        .expect("the detector noticed that its consumer is gone")
        .unwrap();
    let error = ended.expect_err("the detector ends with an error, not Ok");
    assert!(
        format!("{error:#}").contains("consumer"),
        "the error names the consumer: {error:#}"
    );
    assert!(!shutdown.is_cancelled());
    cleanup(&ctx, &world).await;
}
