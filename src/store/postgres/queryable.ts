/**
 * What a PostgreSQL repository needs of its connection: a pg.Pool (statements outside a
 * transaction, each on whichever pooled connection is free) or a pg.PoolClient (inside one
 * transaction) — both satisfy it, so one repository class serves both. A statement given with a
 * `name` is prepared once per connection and then only bound and executed (the login lookup).
 */
export interface QueryResultLike<R> {
  rows: R[];
  rowCount: number | null;
}

export interface NamedQuery {
  name?: string;
  text: string;
  values?: unknown[];
}

export interface Queryable {
  query<R = Record<string, unknown>>(text: string | NamedQuery, values?: unknown[]): Promise<QueryResultLike<R>>;
}
