/**
 * JSON Schemas of the two job requests, for the OpenAPI document. These bodies are checked
 * by the spec normalizers (domain/spec.ts, domain/task.ts), whose messages name the field
 * and the fix, so the schemas describe what they accept rather than validate it (fields
 * they do not know are ignored, as the normalizers ignore them); a test holds the two to
 * the same requests (test/unit/wire-schemas.test.ts).
 */

const inputSchema = {
  type: 'object',
  description: 'A file placed read-only under /inputs before the job starts, from exactly one source.',
  required: ['path'],
  properties: {
    path: { type: 'string', description: 'Where the file appears, under /inputs.' },
    digest: { type: 'string', description: 'A blob uploaded with POST /blobs (sha256:…).' },
    content: { type: 'string', contentEncoding: 'base64', description: 'The file\'s bytes, inline, in base64.' },
    url: { type: 'string', format: 'uri', description: 'Fetched by the node that runs the job (http/https).' },
    sha256: { type: 'string', description: 'The digest a URL\'s content must have.' },
  },
  oneOf: [{ required: ['digest'] }, { required: ['content'] }, { required: ['url'] }],
  additionalProperties: false,
} as const;

const verificationSchema = {
  type: 'object',
  required: ['replicas'],
  properties: { replicas: { type: 'integer', minimum: 2, description: 'Different workers that run it; the majority result is accepted and paid.' } },
} as const;

const rewardSchema = { type: ['string', 'number'], description: 'Credits paid from the caller\'s account to whoever runs it (held in escrow until it ends).' } as const;

/** POST /job (wire/gridx.ts: JobRequestBody). */
export const jobRequestSchema = {
  type: 'object',
  required: ['image', 'command'],
  properties: {
    image: { type: 'string', description: 'A container image the node holds or may pull.' },
    command: { oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }], description: 'Split like a shell splits words; no shell runs on the host.' },
    env: { oneOf: [{ type: 'object', additionalProperties: { type: 'string' } }, { type: 'array', items: { type: 'string' } }] },
    workdir: { type: 'string' },
    resources: {
      type: 'object',
      properties: {
        cpus: { type: 'number', exclusiveMinimum: 0 },
        memory: { type: ['string', 'number'], description: 'Such as "512m" or "2g".' },
        gpus: { type: 'integer', minimum: 0 },
      },
    },
    timeout: { type: ['string', 'number'], description: 'Such as "5m", or seconds.' },
    network: { type: 'string', description: '"none" unless the node allows another.' },
    title: { type: 'string' },
    pin: { type: 'boolean', description: 'Run only on the node it is sent to.' },
    reward: rewardSchema,
    verification: verificationSchema,
    inputs: { type: 'array', items: inputSchema },
    volumes: { type: 'array', items: { type: 'string' }, description: '"host:container[:ro|rw]", only where the operator allows host paths.' },
  },
} as const;

/** POST /api/tasks (wire/parity.ts: ParityTask). */
export const parityTaskSchema = {
  type: 'object',
  required: ['title', 'config', 'environment'],
  properties: {
    title: { type: 'string' },
    description: { type: 'string' },
    type: { const: 'docker' },
    config: {
      type: 'object',
      required: ['command'],
      properties: {
        command: { type: 'array', items: { type: 'string' } },
        resources: {
          type: 'object',
          properties: { memory: { type: 'string' }, cpu: { type: 'number' }, timeout: { type: ['number', 'string'] } },
        },
        inputs: { type: 'array', items: inputSchema },
      },
    },
    environment: {
      type: 'object',
      required: ['config'],
      properties: {
        type: { const: 'docker' },
        config: {
          type: 'object',
          required: ['image'],
          properties: { image: { type: 'string' }, workdir: { type: 'string' }, env: { type: 'array', items: { type: 'string' } } },
        },
      },
    },
    reward: rewardSchema,
    verification: verificationSchema,
  },
} as const;
