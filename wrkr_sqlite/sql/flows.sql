-- The statements of workflows (see _flows.py), one per `-- name:` section.

-- name: flow_get
SELECT document FROM wrkr_flows WHERE id = :id

-- name: flow_save
INSERT INTO wrkr_flows (id, state, document, created, updated)
VALUES (:id, :state, :document, :now, :now)
ON CONFLICT (id) DO UPDATE
SET state = excluded.state, document = excluded.document, updated = excluded.updated

-- name: flow_cancel
-- :ids is a JSON array of item ids; pending covers scheduled and ready.
DELETE FROM wrkr_items
WHERE id IN (SELECT value FROM json_each(:ids)) AND state = 'pending'
RETURNING id
