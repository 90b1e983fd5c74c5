// Test classes run one after another: each torch op already uses both cores (libtorch's OpenMP threads), and
// parallel classes oversubscribe them, which makes OpenMP's barriers spin against each other.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
