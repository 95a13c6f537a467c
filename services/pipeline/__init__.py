"""The delivery core: push handling, hand-on (fan-out and fan-in), the job state machine and
its store, the bus, envelopes, schemas, the topology and the public event."""
