import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type DropReason = 'queue_full' | 'invalid' | 'closed' | 'shutdown';

/** The recorder's Prometheus metrics, on the engine's registry (or a test's own). */
export class RecordingMetrics {
  readonly sessions: Counter;
  readonly entries: Counter;
  readonly dropped: Counter<'reason'>;
  readonly failures: Counter;
  readonly queued: Gauge;
  readonly writeSeconds: Histogram;

  /** `queued` is read when metrics are scraped, so the hot path never touches the gauge. */
  constructor(registry: Registry, queued: () => number) {
    const registers = [registry];
    this.sessions = new Counter({ name: 'gatehouse_recording_sessions_total', help: 'Sessions opened for recording (targets with recording.enabled).', registers });
    this.entries = new Counter({ name: 'gatehouse_recording_entries_written_total', help: 'Recording entries written to the store.', registers });
    this.dropped = new Counter({
      name: 'gatehouse_recording_entries_dropped_total',
      help: 'Recording entries lost, by reason: queue_full (the store was unavailable too long), invalid (a proxy bug), closed (appended after close), shutdown (unwritten when the gateway stopped).',
      labelNames: ['reason'],
      registers,
    });
    this.failures = new Counter({ name: 'gatehouse_recording_write_failures_total', help: 'Recording batch writes that failed (the batch is retried).', registers });
    this.queued = new Gauge({
      name: 'gatehouse_recording_queue_entries',
      help: 'Recording entries waiting to be written.',
      registers,
      collect() {
        this.set(queued());
      },
    });
    this.writeSeconds = new Histogram({
      name: 'gatehouse_recording_write_seconds',
      help: 'Time to write one recording batch to the store.',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2],
      registers,
    });
  }
}
