// Renders /api/v1/openapi.json as a readable page: every route, its body and its answers.
import { el } from '/static/dom.js';

function schemaName(schema) {
  if (!schema) return '';
  if (schema.$ref) return schema.$ref.split('/').pop();
  if (schema.type === 'array') return `array of ${schemaName(schema.items)}`;
  if (schema.anyOf) return schema.anyOf.map(schemaName).join(' or ');
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(' | ');
  return schema.type || '';
}

function schemaBlock(name, schema) {
  const required = schema.required || [];
  const rows = Object.entries(schema.properties || {}).map(([field, spec]) =>
    el('tr', {},
      el('td', {}, el('code', { text: field })),
      el('td', { text: schemaName(spec) + (required.includes(field) ? ' (required)' : '') }),
      el('td', { text: spec.description || '' })));
  return el('section', { id: `schema-${name}` },
    el('h3', { text: name }),
    rows.length ? el('table', {}, el('tbody', {}, ...rows)) : el('p', { text: schemaName(schema) }));
}

function operationBlock(path, method, op) {
  const body = op.requestBody
    ? Object.entries(op.requestBody.content).map(([type, media]) => `${type}: ${schemaName(media.schema)}`).join('; ')
    : 'none';
  const answers = Object.entries(op.responses).map(([status, answer]) =>
    el('li', {}, el('code', { text: status }), ` ${answer.description || ''}`));
  return el('section', { class: 'operation' },
    el('h3', {}, el('code', { text: `${method.toUpperCase()} ${path}` }), ` — ${op.summary || ''}`),
    op.security ? el('p', { text: 'Needs Authorization: Bearer <API key>.' }) : null,
    el('p', { text: `Body: ${body}` }),
    el('ul', {}, ...answers));
}

async function render() {
  const main = document.getElementById('api-docs');
  const spec = await (await fetch('/api/v1/openapi.json')).json();
  const operations = Object.entries(spec.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, op]) => operationBlock(path, method, op)));
  const schemas = Object.entries(spec.components.schemas).map(([name, schema]) => schemaBlock(name, schema));
  main.replaceChildren(
    el('p', { text: spec.info.description }),
    el('h2', { text: 'Routes' }), ...operations,
    el('h2', { text: 'Schemas' }), ...schemas);
}

render().catch((error) => {
  document.getElementById('api-docs').textContent = `Could not load the API description: ${error.message}`;
});
