-- Quality you can trust (issue 11). DuckLake-compatible: no keys, no indexes, no non-literal defaults;
-- timestamps and keys are set by core/store code.

-- Whether a judgement was decoded under a schema/grammar the engine accepted (NULL: before this column).
ALTER TABLE judgements ADD COLUMN constrained BOOLEAN;
-- The rubric version a score was given against (NULL: scored before versions existed).
ALTER TABLE judgements ADD COLUMN rubric_version INTEGER;
ALTER TABLE judge_runs ADD COLUMN rubric_version INTEGER;
ALTER TABLE human_scores ADD COLUMN rubric_version INTEGER;

-- Every version of every rubric, kept: an edit or an import with other content adds version N+1,
-- nothing is replaced silently. (rubric, version) is unique by construction in core.store.quality.
CREATE TABLE rubric_versions (
    rubric       VARCHAR NOT NULL,
    version      INTEGER NOT NULL,
    content_hash VARCHAR NOT NULL,          -- sha256 of the canonical JSON of the rubric
    doc          JSON NOT NULL,             -- the rubric in its file form
    created_at   TIMESTAMP
);
