import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * JSON logs on stdout. Secrets are `Secret` objects that serialise as
 * "[secret]", so no redaction list has to be kept in step with the config.
 */
export function createLogger(level = process.env.GATEHOUSE_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name: 'gatehouse', level });
}
