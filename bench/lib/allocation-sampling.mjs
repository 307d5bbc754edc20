// Preloaded into a process under test (node --import): V8's sampling heap
// profiler from start to exit, keeping the samples of objects the GC has
// already collected too, so the profile says who allocates, not only who
// holds memory at the end (what `node --heap-prof` shows). Written to
// $GATEHOUSE_ALLOCATION_PROFILE when the process exits.
//
// Plain JavaScript: it is loaded into dist/, which runs without tsx.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import process from 'node:process';

const out = process.env.GATEHOUSE_ALLOCATION_PROFILE;
if (out) {
  const session = new Session();
  session.connect();
  session.post('HeapProfiler.enable');
  session.post('HeapProfiler.startSampling', {
    samplingInterval: 8192,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  // A session in the same thread answers synchronously, so this completes inside the exit handler.
  process.on('exit', () => {
    session.post('HeapProfiler.stopSampling', (err, result) => {
      if (!err) writeFileSync(out, JSON.stringify(result.profile));
    });
  });
}
