//! A new topology declared by many connections of one process at once (an `imgmeta up`
//! start: the API's publisher, the relay, the worker's consumer and the dead-letter consumer)
//! is declared once without errors.

use imgmeta_queue::{Broker, Deliveries, Publisher, Topology};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_declarations_all_succeed() {
    let broker = Broker::new("amqp://guest:guest@127.0.0.1:5672/%2f".to_owned().into());
    for round in 0..10 {
        let topology = Topology::new(&format!(
            "imgmeta-declare-test-{}-{round}",
            imgmeta_domain::JobId::new()
        ));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..32 {
            let (broker, topology) = (broker.clone(), topology.clone());
            tasks.spawn(async move {
                if i % 2 == 0 {
                    Publisher::new(&broker, topology)
                        .unwrap()
                        .ping()
                        .await
                        .map_err(|e| e.to_string())
                } else {
                    Deliveries::jobs(&broker, &topology, 1)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
            });
        }
        let mut errors = Vec::new();
        while let Some(result) = tasks.join_next().await {
            if let Err(err) = result.unwrap() {
                errors.push(err);
            }
        }
        Publisher::new(&broker, topology)
            .unwrap()
            .delete_topology()
            .await
            .unwrap();
        assert!(errors.is_empty(), "round {round}: {errors:?}");
    }
}
