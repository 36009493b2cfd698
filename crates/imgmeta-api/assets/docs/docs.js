// The API reference page: fetches /openapi.json (same origin) and renders its operations by
// tag, with parameters, request bodies, responses and the component schemas. Every node is
// built with the DOM's own calls and text set as text (never parsed as markup), and no style is
// set inline, so it runs under the service's Content-Security-Policy.
"use strict";

(function () {
  const METHODS = ["get", "post", "put", "patch", "delete", "head", "options", "trace"];

  /** Creates an element with a class, text and children. */
  function el(tag, options, ...children) {
    const node = document.createElement(tag);
    const opts = options || {};
    if (opts.className) node.className = opts.className;
    if (opts.text !== undefined) node.textContent = opts.text;
    if (opts.href) node.setAttribute("href", opts.href);
    if (opts.id) node.id = opts.id;
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child);
    }
    return node;
  }

  /** Appends a line of the document's light markdown to `node`: `code` spans, as text. */
  function inline(node, text) {
    String(text || "").split("`").forEach(function (part, i) {
      node.append(i % 2 === 1 ? el("code", { text: part }) : document.createTextNode(part));
    });
    return node;
  }

  /** Renders paragraphs of the document's light markdown. */
  function prose(text, tag) {
    const wrapper = el(tag || "div", { className: "prose" });
    for (const paragraph of String(text || "").split(/\n\s*\n/)) {
      if (!paragraph.trim()) continue;
      wrapper.append(inline(el("p"), paragraph));
    }
    return wrapper;
  }

  function refName(ref) {
    return ref.split("/").pop();
  }

  function schemaAnchor(name) {
    return "schema-" + name;
  }

  function opAnchor(method, path) {
    return "op-" + method + "-" + path.replace(/[^A-Za-z0-9]+/g, "-");
  }

  /** A short description of a schema's type, with links to named schemas. */
  function typeOf(schema) {
    const span = el("span", { className: "type" });
    if (!schema || Object.keys(schema).length === 0) {
      span.append("any");
      return span;
    }
    if (schema.$ref) {
      const name = refName(schema.$ref);
      span.append(el("a", { href: "#" + schemaAnchor(name), text: name }));
      return span;
    }
    for (const key of ["oneOf", "anyOf", "allOf"]) {
      if (Array.isArray(schema[key])) {
        const joiner = key === "allOf" ? " & " : " | ";
        schema[key].forEach(function (part, i) {
          if (i > 0) span.append(joiner);
          span.append(typeOf(part));
        });
        return span;
      }
    }
    let types = schema.type;
    if (!Array.isArray(types)) types = types ? [types] : [];
    const shown = types.map(function (t) {
      if (t === "array") {
        const inner = el("span");
        inner.append("array of ", typeOf(schema.items));
        return inner;
      }
      if (schema.format) return t + " (" + schema.format + ")";
      if (schema.contentMediaType) return t + " (" + schema.contentMediaType + ")";
      return t;
    });
    if (shown.length === 0) shown.push(schema.enum ? "enum" : "object");
    shown.forEach(function (t, i) {
      if (i > 0) span.append(" | ");
      span.append(t);
    });
    return span;
  }

  /** Constraints and enumerations of a schema, as a line of text. */
  function constraints(schema) {
    if (!schema) return null;
    const notes = [];
    if (schema.minimum !== undefined) notes.push("≥ " + schema.minimum);
    if (schema.maximum !== undefined) notes.push("≤ " + schema.maximum);
    if (schema.default !== undefined) notes.push("default " + JSON.stringify(schema.default));
    if (schema.deprecated) notes.push("deprecated");
    if (notes.length === 0 && !schema.enum) return null;
    const line = el("div", { className: "constraints" });
    if (notes.length) line.append(notes.join(", "));
    if (Array.isArray(schema.enum)) {
      const list = el("ul", { className: "enum" });
      for (const value of schema.enum) list.append(el("li", {}, el("code", { text: String(value) })));
      line.append(list);
    }
    return line;
  }

  /** The properties of an object schema as a table (name, type, required, description). */
  function propertiesTable(schema, components) {
    const resolved = resolve(schema, components);
    if (Array.isArray(resolved.allOf)) {
      const wrapper = el("div");
      for (const part of resolved.allOf) wrapper.append(propertiesTable(part, components));
      return wrapper;
    }
    if (!resolved.properties) return null;
    const required = new Set(resolved.required || []);
    const table = el("table", { className: "props" });
    table.append(el("thead", {}, el("tr", {},
      el("th", { text: "Field" }), el("th", { text: "Type" }), el("th", { text: "Description" }))));
    const body = el("tbody");
    for (const [name, prop] of Object.entries(resolved.properties)) {
      const nameCell = el("td", {}, el("code", { text: name }));
      if (required.has(name)) nameCell.append(el("span", { className: "required", text: " required" }));
      body.append(el("tr", {},
        nameCell,
        el("td", {}, typeOf(prop)),
        el("td", {}, prop.description ? prose(prop.description) : null, constraints(prop))));
    }
    table.append(body);
    return table;
  }

  function resolve(schema, components) {
    if (schema && schema.$ref) {
      const target = components[refName(schema.$ref)];
      return target || {};
    }
    return schema || {};
  }

  /** A body (request or response content): per media type, its schema. */
  function contentBlock(content, components) {
    const block = el("div", { className: "content" });
    for (const [mediaType, media] of Object.entries(content || {})) {
      const row = el("div", { className: "media" }, el("code", { className: "mediatype", text: mediaType }));
      if (media.schema) {
        row.append(" ", typeOf(media.schema));
        const props = propertiesTable(media.schema, components);
        if (props) row.append(props);
      }
      block.append(row);
    }
    return block;
  }

  function securityLine(op) {
    const line = el("p", { className: "security" });
    if (!op.security || op.security.length === 0) {
      line.append("No authentication.");
      return line;
    }
    line.append("Authentication: ");
    op.security.forEach(function (requirement, i) {
      if (i > 0) line.append(" or ");
      const names = Object.keys(requirement);
      names.forEach(function (name, j) {
        if (j > 0) line.append(" + ");
        line.append(el("a", { href: "#security-" + name, text: name }));
      });
    });
    return line;
  }

  function parametersTable(params, components) {
    const table = el("table", { className: "params" });
    table.append(el("thead", {}, el("tr", {},
      el("th", { text: "Parameter" }), el("th", { text: "In" }), el("th", { text: "Type" }),
      el("th", { text: "Description" }))));
    const body = el("tbody");
    for (const param of params) {
      const name = el("td", {}, el("code", { text: param.name }));
      if (param.required) name.append(el("span", { className: "required", text: " required" }));
      if (param.deprecated) name.append(el("span", { className: "deprecated", text: " deprecated" }));
      body.append(el("tr", {},
        name,
        el("td", { text: param.in }),
        el("td", {}, typeOf(param.schema)),
        el("td", {}, param.description ? prose(param.description) : null,
          constraints(resolve(param.schema, components)))));
    }
    table.append(body);
    return table;
  }

  function responsesBlock(responses, components) {
    const list = el("div", { className: "responses" });
    for (const [status, response] of Object.entries(responses || {})) {
      const kind = status.charAt(0) === "2" ? "ok" : status.charAt(0) === "3" ? "redirect" : "error";
      const item = el("div", { className: "response" },
        el("span", { className: "status status-" + kind, text: status }));
      item.append(prose(response.description || ""));
      if (response.headers && Object.keys(response.headers).length) {
        const headers = el("ul", { className: "headers" });
        for (const [name, header] of Object.entries(response.headers)) {
          headers.append(el("li", {}, el("code", { text: name }), " ",
            typeOf(header.schema), header.description ? inline(el("span"), " — " + header.description) : null));
        }
        item.append(headers);
      }
      if (response.content) item.append(contentBlock(response.content, components));
      list.append(item);
    }
    return list;
  }

  function operationSection(method, path, op, components) {
    const section = el("section", { className: "operation", id: opAnchor(method, path) });
    section.append(el("h3", {},
      el("span", { className: "method method-" + method, text: method.toUpperCase() }), " ",
      el("code", { className: "path", text: path })));
    if (op.summary) section.append(inline(el("p", { className: "summary" }), op.summary));
    if (op.description) section.append(prose(op.description));
    section.append(securityLine(op));
    if (op.parameters && op.parameters.length) {
      section.append(el("h4", { text: "Parameters" }), parametersTable(op.parameters, components));
    }
    if (op.requestBody) {
      section.append(el("h4", { text: "Request body" + (op.requestBody.required ? " (required)" : "") }));
      if (op.requestBody.description) section.append(prose(op.requestBody.description));
      section.append(contentBlock(op.requestBody.content, components));
    }
    section.append(el("h4", { text: "Responses" }), responsesBlock(op.responses, components));
    return section;
  }

  function schemaSection(name, schema, components) {
    const section = el("section", { className: "schema", id: schemaAnchor(name) });
    section.append(el("h3", {}, el("code", { text: name }), " ", typeOf(Object.assign({}, schema, { $ref: undefined }))));
    if (schema.description) section.append(prose(schema.description));
    const props = propertiesTable(schema, components);
    if (props) section.append(props);
    for (const key of ["oneOf", "anyOf"]) {
      if (Array.isArray(schema[key])) {
        const list = el("ul", { className: "variants" });
        for (const variant of schema[key]) {
          const item = el("li", {}, typeOf(variant));
          const variantProps = propertiesTable(variant, components);
          if (variantProps) item.append(variantProps);
          list.append(item);
        }
        section.append(el("p", { text: key === "oneOf" ? "One of:" : "Any of:" }), list);
      }
    }
    const extra = constraints(schema);
    if (extra) section.append(extra);
    return section;
  }

  function securitySection(schemes) {
    const section = el("section", { className: "security-schemes", id: "security" });
    section.append(el("h2", { text: "Authentication" }));
    for (const [name, scheme] of Object.entries(schemes || {})) {
      const where = scheme.type === "http"
        ? "HTTP " + scheme.scheme + (scheme.bearerFormat ? " (" + scheme.bearerFormat + ")" : "")
        : scheme.type === "apiKey" ? scheme.in + " " + scheme.name : scheme.type;
      const item = el("div", { className: "scheme", id: "security-" + name },
        el("h3", {}, el("code", { text: name }), " ", el("span", { className: "type", text: where })));
      if (scheme.description) item.append(prose(scheme.description));
      section.append(item);
    }
    return section;
  }

  function render(doc) {
    const main = document.getElementById("reference");
    const toc = document.getElementById("toc");
    const components = (doc.components && doc.components.schemas) || {};
    main.replaceChildren();
    document.getElementById("title").textContent = (doc.info && doc.info.title ? doc.info.title : "API") + " API reference";
    document.getElementById("version").textContent =
      "version " + (doc.info ? doc.info.version : "?") + " · OpenAPI " + doc.openapi;
    if (doc.info && doc.info.description) main.append(el("section", { className: "intro" }, prose(doc.info.description)));

    // Operations grouped by their first tag, in the tags' declared order.
    const groups = new Map();
    for (const tag of doc.tags || []) groups.set(tag.name, { tag: tag, ops: [] });
    for (const [path, item] of Object.entries(doc.paths || {})) {
      for (const method of METHODS) {
        const op = item[method];
        if (!op) continue;
        const name = (op.tags && op.tags[0]) || "other";
        if (!groups.has(name)) groups.set(name, { tag: { name: name }, ops: [] });
        groups.get(name).ops.push({ method: method, path: path, op: op });
      }
    }
    const tocList = el("ul");
    for (const { tag, ops } of groups.values()) {
      if (ops.length === 0) continue;
      const section = el("section", { className: "tag", id: "tag-" + tag.name });
      section.append(el("h2", { text: tag.name }));
      if (tag.description) section.append(prose(tag.description));
      const tocOps = el("ul");
      for (const { method, path, op } of ops) {
        section.append(operationSection(method, path, op, components));
        tocOps.append(el("li", {}, el("a", { href: "#" + opAnchor(method, path) },
          el("span", { className: "method method-" + method, text: method.toUpperCase() }), " " + path)));
      }
      tocList.append(el("li", {}, el("a", { href: "#tag-" + tag.name, text: tag.name }), tocOps));
      main.append(section);
    }
    main.append(securitySection(doc.components && doc.components.securitySchemes));
    const schemas = el("section", { className: "schemas", id: "schemas" }, el("h2", { text: "Schemas" }));
    for (const [name, schema] of Object.entries(components)) schemas.append(schemaSection(name, schema, components));
    main.append(schemas);
    tocList.append(el("li", {}, el("a", { href: "#security", text: "Authentication" })));
    tocList.append(el("li", {}, el("a", { href: "#schemas", text: "Schemas" })));
    toc.replaceChildren(tocList);
    if (location.hash) {
      const target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
      if (target) target.scrollIntoView();
    }
  }

  function fail(message) {
    const status = document.getElementById("status");
    if (status) {
      status.textContent = message;
      status.className = "failed";
    }
  }

  fetch("/openapi.json", { headers: { Accept: "application/json" } })
    .then(function (response) {
      if (!response.ok) throw new Error("/openapi.json answered " + response.status);
      return response.json();
    })
    .then(render)
    .catch(function (error) {
      fail("Could not load the contract: " + error.message);
    });
})();
