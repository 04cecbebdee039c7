/**
 * What a PostgreSQL repository needs of its connection: a pg.Pool (statements outside a
 * transaction, each on whichever pooled connection is free) or a pg.PoolClient (inside one
 * transaction) — both satisfy it, so one repository class serves both.
 */
export interface QueryResultLike<R> {
  rows: R[];
  rowCount: number | null;
}

export interface Queryable {
  query<R = Record<string, unknown>>(text: string, values?: unknown[]): Promise<QueryResultLike<R>>;
}
