-- The statements of workflows (see _flows.py), one per `-- name:` section.

-- name: flow_lock
SELECT document FROM {schema}.flows WHERE id = %(id)s FOR UPDATE

-- name: flow_get
SELECT document FROM {schema}.flows WHERE id = %(id)s

-- name: flow_save
INSERT INTO {schema}.flows AS f (id, state, document, created, updated)
VALUES (%(id)s, %(state)s, %(document)s, %(now)s, %(now)s)
ON CONFLICT (id) DO UPDATE
SET state = excluded.state, document = excluded.document, updated = excluded.updated

-- name: flow_tag
UPDATE {schema}.items SET flow = %(flow)s WHERE id = ANY(%(ids)s::uuid[])

-- name: flow_cancel
DELETE FROM {schema}.items WHERE id = ANY(%(ids)s::uuid[]) AND state = 'pending' RETURNING id
