/**
 * An SQL analysis thread (analysis-threads.ts): analyses one text with the
 * real PostgreSQL parser, as analyse.ts does on the main thread. An error
 * comes back as its fields, since an Error's class does not survive the
 * trip between threads.
 */
import { analyseSqlSyncWithShape, loadSqlParser, SqlAnalysisError, type ShapedAnalysis } from './analyse.js';

export type AnalysisReply = ShapedAnalysis | { error: string; position: number | undefined };

// Loaded on the first call, not at the top level: a worker's module with top-level await is not run through tsx's loader (tests run the source).
export default async function analyse(text: string): Promise<AnalysisReply> {
  await loadSqlParser();
  try {
    return analyseSqlSyncWithShape(text);
  } catch (error) {
    if (error instanceof SqlAnalysisError) return { error: error.message, position: error.position };
    throw error;
  }
}
