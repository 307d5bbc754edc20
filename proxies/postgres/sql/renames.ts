/**
 * What an ALTER … RENAME or ALTER … SET SCHEMA takes away from a name, as
 * facts.ts `renames`. A mask rule finds its column by name
 * (`schema.table.column`), so after such a statement the rule would find
 * nothing and the column would come back unmasked. ALTER TABLE … INHERIT
 * and ATTACH PARTITION count too: the table's rows are then read through
 * the parent, under the parent's name and OID.
 */
import { defaultSchema } from './facts.js';

type Json = Record<string, unknown>;

/** Relation kinds whose rename or move changes the names mask rules use. */
const RELATIONS = new Set(['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_FOREIGN_TABLE']);

/** `schema`, `schema.table` or `schema.table.column`; empty when the statement renames nothing a rule can name. */
export function renamedNames(type: string, body: Json): string[] {
  if (type === 'RenameStmt') {
    if (body.renameType === 'OBJECT_SCHEMA') return typeof body.subname === 'string' ? [body.subname] : [];
    const relation = relationName(body.relation);
    if (relation === undefined) return [];
    if (body.renameType === 'OBJECT_COLUMN') return typeof body.subname === 'string' ? [`${relation}.${body.subname}`] : [];
    return RELATIONS.has(String(body.renameType)) ? [relation] : [];
  }
  if (type === 'AlterObjectSchemaStmt' && RELATIONS.has(String(body.objectType))) {
    const relation = relationName(body.relation);
    return relation === undefined ? [] : [relation];
  }
  if (type === 'AlterTableStmt' && Array.isArray(body.cmds)) return body.cmds.flatMap((cmd) => reparented(body.relation, cmd));
  return [];
}

/** The table an ALTER TABLE command makes a child: `child INHERIT parent`, `parent ATTACH PARTITION child`. */
function reparented(relation: unknown, cmd: unknown): string[] {
  const command = (cmd as Json | undefined)?.AlterTableCmd as Json | undefined;
  let child: string | undefined;
  if (command?.subtype === 'AT_AddInherit') child = relationName(relation);
  if (command?.subtype === 'AT_AttachPartition') child = relationName(((command.def as Json | undefined)?.PartitionCmd as Json | undefined)?.name);
  return child === undefined ? [] : [child];
}

function relationName(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const rv = value as Json;
  if (typeof rv.relname !== 'string') return undefined;
  return `${typeof rv.schemaname === 'string' ? rv.schemaname : defaultSchema}.${rv.relname}`;
}
