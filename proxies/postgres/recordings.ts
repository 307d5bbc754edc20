/**
 * The proxy's statements, as the engine's session recorder keeps them: a
 * statement transcript per session (design brief, "Recordings"). Row values
 * never reach it; the SQL text is the agent's own input.
 */
import type { SessionRecorder } from '../../engine/recording/recorder.js';
import type { SessionRecordings } from './session/client-session.js';

export function postgresRecordings(recorder: SessionRecorder): SessionRecordings {
  return {
    open(info) {
      const recording = recorder.open({
        session_id: info.sessionId,
        target: info.target.name,
        target_kind: 'postgres',
        identity: { sub: info.identity.sub, iss: info.identity.iss, groups: info.identity.groups, act: info.identity.act },
        source_ip: info.sourceIp,
        protocol: 'postgres',
        started_at: Date.now(),
      });
      if (!recording.enabled) return null;
      return {
        statement: (r) => recording.append({
          statement: r.sql,
          decision: r.decision,
          reasons: r.reasons,
          decision_id: r.decisionId,
          audit: r.audit,
          approval_id: r.approvalId,
          duration_ms: r.durationMs,
          rows: r.rows,
          command_tag: r.commandTag,
          error: r.error,
          masked: r.masked,
        }),
        close: (reason) => recording.close({ ended_at: Date.now(), reason }),
      };
    },
  };
}
