export * from "./graph.js";
export * as op from "./ops.js";
