// User-typed loss landscapes: the browser twin of sampy/expressions.py.
//
// The text is parsed by mathjs (a well-kept parser with symbolic derivatives), never
// evaluated by it: every node of the parsed tree is checked against the whitelist that
// sampy.expressions uses (exported with the metadata, so the two accept the same language),
// then compiled into closures over batches of points. What is allowed: numbers, x and y, the
// constants pi and e, unary + and −, the operators + − * / ** (Python's power: `^` means XOR
// in Python and is refused, as the reference refuses it), and calls of the whitelisted
// functions by name. The same bounds on length, bracket nesting, node count, depth and
// constant exponents apply.
//
// The gradient is exact: mathjs differentiates the tree symbolically. Where a rule of mathjs
// differs from the reference's at an edge point (|a|′ = |a|/a is NaN at 0, the reference's
// sign(a) is 0) or where mathjs has none (minimum, maximum, arctan2, sign, powers with a
// variable exponent), the function is replaced, for differentiation only, by its
// first-order expansion at the point, with the reference's slopes (its forward-mode rule),
// so both twins differentiate the same way.

import {
  ConstantNodeDependencies,
  FunctionNodeDependencies,
  OperatorNodeDependencies,
  ParenthesisNodeDependencies,
  SymbolNodeDependencies,
  create,
  derivativeDependencies,
  parseDependencies,
} from "mathjs";
import { TestFunction } from "./functions/_base.js";
import { metadata } from "./optim/hyper.js";

const math = create({
  ConstantNodeDependencies,
  FunctionNodeDependencies,
  OperatorNodeDependencies,
  ParenthesisNodeDependencies,
  SymbolNodeDependencies,
  derivativeDependencies,
  parseDependencies,
});

const RULES = metadata.expressions;
const UNARY = new Set(RULES.unary);
const BINARY = new Set(RULES.binary);
const ALLOWED = [...RULES.unary, ...RULES.binary].join(", ");

/** A rejected expression: `message` says why, `position` where (0-based, or null). */
export class ExpressionError extends RangeError {
  constructor(message, position = null) {
    super(position === null ? message : `${message} (column ${position + 1})`);
    this.reason = message;
    this.position = position;
  }
}

// Python's tokens that mathjs reads differently, or reads where Python would refuse.
const REFUSED = [
  [/\^/, "the operator '^' is not allowed; use + - * / **; use ** for powers"],
  [/%/, "the operator '%' is not allowed; use + - * / **"],
  [/\/\//, "the operator '//' is not allowed; use + - * / **"],
  [/@/, "the operator '@' is not allowed; use + - * / **"],
  [/<<|>>/, "bit shifts are not allowed; use + - * / **"],
  [/[&|~]/, "bit operators are not allowed; use + - * / **"],
  [/[<>]=?|==|!=/, "comparisons (<, ==, ...) are not allowed"],
  [/!/, "'!' is not allowed"],
  [/["']/, "strings are not allowed"],
  [/\[|\]/, "indexing and slicing ('[...]') are not allowed"],
  [/[{}]/, "sets and dictionaries are not allowed"],
  [/:=/, "assignment expressions (':=') are not allowed"],
  [/[;:?=]/, "syntax error: invalid syntax"],
  [/[A-Za-z_][A-Za-z_0-9]*\s*\.|\)\s*\./, "attribute access is not allowed; write sin(x), not np.sin(x)"],
  [
    /\b(lambda|if|else|for|in|and|or|not|is|to|mod|xor)\b/,
    "keywords are not allowed (only numbers, x, y, +, -, *, /, ** and function calls)",
  ],
];

function precheck(text) {
  if (typeof text !== "string")
    throw new ExpressionError(`the expression must be a string, got ${typeof text}`);
  if (text.length > RULES.max_length) {
    throw new ExpressionError(
      `the expression is too long (${text.length} characters; at most ${RULES.max_length})`,
    );
  }
  const stripped = text.trim();
  const offset = text.length - text.trimStart().length;
  if (!stripped)
    throw new ExpressionError("the expression is empty; type a function of x and y, e.g. x**2 + y**2");
  for (let i = 0; i < stripped.length; i++) {
    const code = stripped.charCodeAt(i);
    if ((code < 32 && code !== 9) || code === 127) {
      throw new ExpressionError("the expression must be one line of printable text", offset + i);
    }
  }
  let depth = 0;
  for (let i = 0; i < stripped.length; i++) {
    const char = stripped[i];
    if ("([{".includes(char)) {
      depth += 1;
      if (depth > RULES.max_nesting) {
        throw new ExpressionError(
          `brackets are nested too deeply (more than ${RULES.max_nesting} levels)`,
          offset + i,
        );
      }
    } else if (")]}".includes(char)) {
      depth -= 1;
    }
  }
  // Python's power is **; it becomes mathjs's ^ only after every lone ^ has been refused.
  const withoutPowers = stripped.replace(/\*\*/g, "  ");
  for (const [pattern, message] of REFUSED) {
    const found = pattern.exec(withoutPowers);
    if (found) throw new ExpressionError(message, offset + found.index);
  }
  // Python reads 1_000 as 1000; mathjs does not know the separator.
  const digits = stripped.replace(/(\d)_(?=\d)/g, "$1");
  return { source: digits.replace(/\*\*/g, "^"), offset };
}

function fail(message) {
  throw new ExpressionError(message);
}

// ------------------------------------------------------------------------ checking the tree

function children(node) {
  if (node.type === "ParenthesisNode") return [node.content];
  if (node.type === "OperatorNode") return node.args;
  if (node.type === "FunctionNode") return [node.fn, ...node.args];
  return [];
}

/** Node count and depth as Python's ast counts them (brackets are no node there). */
function checkSize(root) {
  let count = 1; // Python's Expression node
  const stack = [[root, 2]];
  while (stack.length) {
    const [node, depth] = stack.pop();
    if (node.type === "ParenthesisNode") {
      stack.push([node.content, depth]);
      continue;
    }
    count += 1;
    if (count > RULES.max_nodes) {
      fail(`the expression is too long (more than ${RULES.max_nodes} numbers, names and operations)`);
    }
    if (depth > RULES.max_depth) {
      fail(
        `the expression is nested too deeply (more than ${RULES.max_depth} levels of operations inside one another)`,
      );
    }
    for (const child of children(node)) stack.push([child, depth + 1]);
  }
}

const BINARY_OPS = { add: "+", subtract: "-", multiply: "*", divide: "/", pow: "**" };

/**
 * Check a parsed node; return its constant value when it depends on neither variable (as the
 * reference folds such nodes in float64), else null. Throws ExpressionError.
 */
function check(node) {
  switch (node.type) {
    case "ParenthesisNode":
      return check(node.content);
    case "ConstantNode": {
      if (typeof node.value !== "number") fail(`the literal ${JSON.stringify(node.value)} is not allowed`);
      if (!Number.isFinite(node.value)) fail("this number is too large (it overflows to infinity)");
      return node.value;
    }
    case "SymbolNode": {
      if (RULES.variables.includes(node.name)) return null;
      if (node.name in RULES.constants) return RULES.constants[node.name];
      if (UNARY.has(node.name) || BINARY.has(node.name)) {
        fail(`'${node.name}' is a function: call it, e.g. ${node.name}(x)`);
      }
      return fail(
        `unknown name '${node.name}'; use the variables x and y, the constants pi and e, and the functions ${ALLOWED}`,
      );
    }
    case "OperatorNode": {
      if (node.implicit) fail("syntax error: invalid syntax (write * between factors)");
      if (node.fn === "unaryMinus" || node.fn === "unaryPlus") {
        const v = check(node.args[0]);
        return v === null ? null : node.fn === "unaryMinus" ? -v : v;
      }
      if (!(node.fn in BINARY_OPS)) fail(`the operator '${node.op}' is not allowed; use + - * / **`);
      const [a, b] = node.args.map(check);
      if (node.fn === "pow" && b !== null && !(Number.isFinite(b) && Math.abs(b) <= RULES.max_exponent)) {
        fail(`the exponent of '**' must be a finite number with |p| <= ${RULES.max_exponent}, got ${b}`);
      }
      if (a === null || b === null) return null;
      return CONSTANT_OPS[node.fn](a, b);
    }
    case "FunctionNode": {
      const name = node.fn.name;
      if (node.fn.type !== "SymbolNode" || name === undefined) {
        fail("only the allowed functions can be called, by name: e.g. sin(x)");
      }
      if (!UNARY.has(name) && !BINARY.has(name))
        fail(`unknown function '${name}'; allowed functions: ${ALLOWED}`);
      const arity = UNARY.has(name) ? 1 : 2;
      if (node.args.length !== arity) {
        fail(`${name} takes ${arity} argument${arity === 1 ? "" : "s"}, got ${node.args.length}`);
      }
      const values = node.args.map(check);
      if (values.some((v) => v === null)) return null;
      return FUNCTIONS[name](...values);
    }
    default:
      return fail(`'${node.type}' expressions are not allowed`);
  }
}

const CONSTANT_OPS = {
  add: (a, b) => a + b,
  subtract: (a, b) => a - b,
  multiply: (a, b) => a * b,
  divide: (a, b) => a / b,
  pow: (a, b) => a ** b,
};

// NumPy's ufuncs of the whitelist, as plain functions of numbers.
const FUNCTIONS = {
  sin: Math.sin,
  cos: Math.cos,
  tan: Math.tan,
  arcsin: Math.asin,
  arccos: Math.acos,
  arctan: Math.atan,
  sinh: Math.sinh,
  cosh: Math.cosh,
  tanh: Math.tanh,
  arcsinh: Math.asinh,
  exp: Math.exp,
  expm1: Math.expm1,
  log: Math.log,
  log1p: Math.log1p,
  log2: Math.log2,
  log10: Math.log10,
  sqrt: Math.sqrt,
  abs: Math.abs,
  square: (a) => a * a,
  sign: (a) => (a > 0 ? 1 : a < 0 ? -1 : a === 0 ? 0 : NaN),
  minimum: (a, b) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.min(a, b)),
  maximum: (a, b) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.max(a, b)),
  arctan2: Math.atan2,
  hypot: Math.hypot,
};

// The functions mathjs's derivative rules produce besides the whitelist's.
const DERIVATIVE_FUNCTIONS = {
  ...FUNCTIONS,
  asin: Math.asin,
  acos: Math.acos,
  atan: Math.atan,
  asinh: Math.asinh,
  sec: (a) => 1 / Math.cos(a),
  sech: (a) => 1 / Math.cosh(a),
};

// ------------------------------------------------------------------------ batch closures

// A compiled node maps the batch (xs, ys) to a Float64Array, or to a number when it is
// constant. `frozen` holds the values frozen at the point by `linearised` (see below).
function compile(node, frozen) {
  switch (node.type) {
    case "ParenthesisNode":
      return compile(node.content, frozen);
    case "ConstantNode":
      return () => node.value;
    case "SymbolNode": {
      if (node.name === "x") return (xs) => xs;
      if (node.name === "y") return (xs, ys) => ys;
      if (node.name in RULES.constants) return () => RULES.constants[node.name];
      const value = frozen.get(node.name);
      if (value === undefined) throw new Error(`no value for the symbol ${node.name}`);
      return value;
    }
    case "OperatorNode": {
      const args = node.args.map((arg) => compile(arg, frozen));
      if (node.fn === "unaryMinus") return lift1(args[0], (a) => -a);
      if (node.fn === "unaryPlus") return args[0];
      return lift2(args[0], args[1], CONSTANT_OPS[node.fn]);
    }
    case "FunctionNode": {
      const f = DERIVATIVE_FUNCTIONS[node.fn.name];
      if (f === undefined) throw new Error(`no evaluation for ${node.fn.name}`);
      const args = node.args.map((arg) => compile(arg, frozen));
      return args.length === 1 ? lift1(args[0], f) : lift2(args[0], args[1], f);
    }
    default:
      throw new Error(`cannot evaluate a ${node.type}`);
  }
}

function lift1(a, f) {
  return (xs, ys) => {
    const va = a(xs, ys);
    if (typeof va === "number") return f(va);
    const out = new Float64Array(va.length);
    for (let i = 0; i < va.length; i++) out[i] = f(va[i]);
    return out;
  };
}

function lift2(a, b, f) {
  return (xs, ys) => {
    const va = a(xs, ys);
    const vb = b(xs, ys);
    if (typeof va === "number" && typeof vb === "number") return f(va, vb);
    const n = typeof va === "number" ? vb.length : va.length;
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++)
      out[i] = f(typeof va === "number" ? va : va[i], typeof vb === "number" ? vb : vb[i]);
    return out;
  };
}

// The reference's forward-mode slopes of the functions whose derivative is taken here:
// ∂v/∂a_k given the arguments a and the value v.
const SLOPES = {
  abs: ([a]) => [FUNCTIONS.sign(a)],
  sign: () => [0.0],
  minimum: ([a, b], v) => tieSplit(a, b, v),
  maximum: ([a, b], v) => tieSplit(a, b, v),
  arctan2: ([a, b]) => {
    const r2 = a * a + b * b;
    return [b / r2, -a / r2];
  },
  hypot: ([a, b], v) => [a / v, b / v],
  expm1: (_, v) => [v + 1.0],
  log1p: ([a]) => [1.0 / (1.0 + a)],
  log2: ([a]) => [1.0 / (a * Math.log(2.0))],
  square: ([a]) => [2.0 * a],
  // ∂/∂a = b a^(b−1) (exponent 1 where b = 0) and ∂/∂b = log(a) a^b (log 1 where a = 0), as
  // the reference writes a power with a variable exponent.
  pow: ([a, b], v) => [b * a ** (b !== 0 ? b - 1.0 : 1.0), Math.log(a === 0 ? 1.0 : a) * v],
};

function tieSplit(a, b, v) {
  const aWins = a === v ? 1.0 : 0.0;
  const bWins = b === v ? 1.0 : 0.0;
  const both = aWins + bWins;
  return [aWins / both, bWins / both];
}

// NumPy's names of the inverse functions, as mathjs knows them (for its derivative rules).
const MATHJS_NAMES = { arcsin: "asin", arccos: "acos", arctan: "atan", arcsinh: "asinh" };

/**
 * The tree mathjs differentiates. Every function mathjs has no rule for (or a different one
 * at an edge point), and every power with a variable exponent, f(a_1, …) becomes its
 * first-order expansion at the point, V + Σ_k S_k (a_k − A_k), with the value V, the slopes
 * S_k and the arguments A_k frozen at the point (symbols __v0, __v1, … whose batch values
 * `frozen` computes from the original tree). Its value is V exactly (a_k − A_k is 0) and its
 * derivative Σ_k S_k a_k′, the reference's forward-mode rule.
 */
function linearised(node, frozen) {
  const symbol = (evaluate) => {
    const name = `__v${frozen.size}`;
    frozen.set(name, evaluate);
    return new math.SymbolNode(name);
  };
  const op = (name, fn, args) => new math.OperatorNode(name, fn, args);
  return node.transform((n) => {
    if (n.type === "FunctionNode" && n.fn.name in MATHJS_NAMES) {
      const args = n.args.map((arg) => linearised(arg, frozen));
      return new math.FunctionNode(new math.SymbolNode(MATHJS_NAMES[n.fn.name]), args);
    }
    let kind = null;
    if (n.type === "FunctionNode" && n.fn.name in SLOPES) kind = n.fn.name;
    if (n.type === "OperatorNode" && n.fn === "pow" && check(n.args[1]) === null) kind = "pow";
    if (kind === null) return n;
    const f = kind === "pow" ? (a, b) => a ** b : FUNCTIONS[kind];
    const args = n.args.map((arg) => compile(arg, frozen));
    const at = (xs, ys) => args.map((arg) => asArray(arg(xs, ys), xs.length));
    const perPoint = (pick) => (xs, ys) => {
      const values = at(xs, ys);
      const out = new Float64Array(xs.length);
      for (let i = 0; i < xs.length; i++) {
        const point = values.map((v) => v[i]);
        out[i] = pick(point, f(...point));
      }
      return out;
    };
    let expansion = symbol(perPoint((_, v) => v));
    n.args.forEach((arg, k) => {
      const slope = symbol(perPoint((point, v) => SLOPES[kind](point, v)[k]));
      const anchor = symbol(perPoint((point) => point[k]));
      const shift = op("-", "subtract", [linearised(arg, frozen), anchor]);
      expansion = op("+", "add", [expansion, op("*", "multiply", [slope, shift])]);
    });
    return expansion;
  });
}

/** a ** 0 is 1 everywhere (also at a = 0), as the reference folds it: derivative 0. */
function withoutZeroPowers(tree) {
  return tree.transform((n) =>
    n.type === "OperatorNode" && n.fn === "pow" && check(n.args[1]) === 0 ? new math.ConstantNode(1) : n,
  );
}

function asArray(value, n) {
  return typeof value === "number" ? new Float64Array(n).fill(value) : value;
}

// ------------------------------------------------------------------------ the public API

/**
 * Check `text` and compile it: {text, value(points), grad(points)} on flat batches of 2-D
 * points. Throws ExpressionError (a RangeError) with the reason and the column.
 */
export function parseExpression(text) {
  const { source, offset } = precheck(text);
  let tree;
  try {
    tree = math.parse(source);
  } catch (error) {
    const column = /char (\d+)/.exec(error.message);
    const where = column === null ? null : offset + Math.max(0, Number(column[1]) - 1);
    throw new ExpressionError(`syntax error: ${error.message.replace(/ \(char \d+\)/, "")}`, where);
  }
  checkSize(tree);
  check(tree);
  const frozen = new Map();
  const value = compile(tree, frozen);
  const expanded = linearised(withoutZeroPowers(tree), frozen);
  const dx = compile(math.derivative(expanded, "x", { simplify: false }), frozen);
  const dy = compile(math.derivative(expanded, "y", { simplify: false }), frozen);
  const split = (points) => {
    const n = points.length / 2;
    const xs = new Float64Array(n);
    const ys = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      xs[i] = points[2 * i];
      ys[i] = points[2 * i + 1];
    }
    return [xs, ys];
  };
  return {
    text: text.trim(),
    value(points) {
      const [xs, ys] = split(points);
      return Float64Array.from(asArray(value(xs, ys), xs.length));
    },
    grad(points) {
      const [xs, ys] = split(points);
      const gx = asArray(dx(xs, ys), xs.length);
      const gy = asArray(dy(xs, ys), xs.length);
      const out = new Float64Array(points.length);
      for (let i = 0; i < xs.length; i++) {
        out[2 * i] = gx[i];
        out[2 * i + 1] = gy[i];
      }
      return out;
    },
  };
}

/** null if `text` is an allowed expression, else the message for the reader. */
export function checkExpression(text) {
  try {
    parseExpression(text);
    return null;
  } catch (error) {
    if (error instanceof ExpressionError) return error.message;
    throw error;
  }
}

/** A 2-D TestFunction for the expression (no known minima; fmin is NaN), on `domain`. */
export function expressionFunction(text, domain = RULES.default_domain) {
  const expression = parseExpression(text);
  return new TestFunction({
    name: "expression",
    value: expression.value,
    grad: expression.grad,
    domain,
    minima: [],
    fmin: NaN,
    params: { expression: expression.text },
  });
}
