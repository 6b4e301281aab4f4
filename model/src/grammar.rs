//! Grammar-constrained decoding: which tokens can continue a SMILES string so that it stays
//! syntactically valid and no atom goes past its element's largest allowed valence.
//!
//! A small incremental state machine per row reads the string one character at a time (a
//! multi-character token is allowed when all its characters are). It enforces:
//! - an atom first, after a bond, after `(`, after `.`; bonds and `(` only after an atom;
//! - `)` only inside a branch, no empty branch, ring-closure digits only right after an atom or a
//!   bond, EOS only when every branch and ring closure is closed and no bond is pending;
//! - bracket atoms `[isotope? symbol chirality? H count? charge? class?]` with real element symbols;
//! - ring closures: not to the atom that opened them, not twice between the same two atoms, the
//!   two bond symbols equal where both are written;
//! - valence: the bond orders at an atom (aromatic bonds count 1, bracket hydrogens count) stay
//!   within RDKit's largest allowed valence of its element (isoelectronic for charged atoms:
//!   N+ as C, O- as F). This is a necessary condition only: aromaticity (kekulisation) and
//!   the valences of metals are left to RDKit.
//!
//! When no token is allowed (a ring left open on an atom with no valence left, say) EOS is
//! allowed so that the row can end; [`GrammarState::dead_end`] says so.

use crate::vocab::{Vocab, EOS};

mod lookahead;

/// Element symbols for bracket atoms (OpenSMILES), with RDKit's largest allowed valence where RDKit
/// limits it (0: not limited here).
const ELEMENTS: &[(&str, u8, u8)] = &[
    // (symbol, atomic number, max valence)
    ("H", 1, 1),
    ("He", 2, 0),
    ("Li", 3, 1),
    ("Be", 4, 2),
    ("B", 5, 3),
    ("C", 6, 4),
    ("N", 7, 3),
    ("O", 8, 2),
    ("F", 9, 1),
    ("Ne", 10, 0),
    ("Na", 11, 1),
    ("Mg", 12, 2),
    ("Al", 13, 6),
    ("Si", 14, 6),
    ("P", 15, 7),
    ("S", 16, 6),
    ("Cl", 17, 1),
    ("Ar", 18, 0),
    ("K", 19, 1),
    ("Ca", 20, 2),
    ("Sc", 21, 0),
    ("Ti", 22, 0),
    ("V", 23, 0),
    ("Cr", 24, 0),
    ("Mn", 25, 0),
    ("Fe", 26, 0),
    ("Co", 27, 0),
    ("Ni", 28, 0),
    ("Cu", 29, 0),
    ("Zn", 30, 0),
    ("Ga", 31, 3),
    ("Ge", 32, 4),
    ("As", 33, 5),
    ("Se", 34, 6),
    ("Br", 35, 1),
    ("Kr", 36, 0),
    ("Rb", 37, 1),
    ("Sr", 38, 2),
    ("Y", 39, 0),
    ("Zr", 40, 0),
    ("Nb", 41, 0),
    ("Mo", 42, 0),
    ("Tc", 43, 0),
    ("Ru", 44, 0),
    ("Rh", 45, 0),
    ("Pd", 46, 0),
    ("Ag", 47, 0),
    ("Cd", 48, 0),
    ("In", 49, 3),
    ("Sn", 50, 4),
    ("Sb", 51, 5),
    ("Te", 52, 6),
    ("I", 53, 5),
    ("Xe", 54, 0),
    ("Cs", 55, 1),
    ("Ba", 56, 2),
    ("La", 57, 0),
    ("Ce", 58, 0),
    ("Pr", 59, 0),
    ("Nd", 60, 0),
    ("Pm", 61, 0),
    ("Sm", 62, 0),
    ("Eu", 63, 0),
    ("Gd", 64, 0),
    ("Tb", 65, 0),
    ("Dy", 66, 0),
    ("Ho", 67, 0),
    ("Er", 68, 0),
    ("Tm", 69, 0),
    ("Yb", 70, 0),
    ("Lu", 71, 0),
    ("Hf", 72, 0),
    ("Ta", 73, 0),
    ("W", 74, 0),
    ("Re", 75, 0),
    ("Os", 76, 0),
    ("Ir", 77, 0),
    ("Pt", 78, 0),
    ("Au", 79, 0),
    ("Hg", 80, 0),
    ("Tl", 81, 3),
    ("Pb", 82, 4),
    ("Bi", 83, 5),
    ("Po", 84, 6),
    ("At", 85, 1),
    ("Rn", 86, 0),
    ("Fr", 87, 1),
    ("Ra", 88, 2),
    ("Ac", 89, 0),
    ("Th", 90, 0),
    ("Pa", 91, 0),
    ("U", 92, 0),
    ("Np", 93, 0),
    ("Pu", 94, 0),
    ("Am", 95, 0),
    ("Cm", 96, 0),
    ("Bk", 97, 0),
    ("Cf", 98, 0),
    ("Es", 99, 0),
    ("Fm", 100, 0),
    ("Md", 101, 0),
    ("No", 102, 0),
    ("Lr", 103, 0),
    ("Rf", 104, 0),
    ("Db", 105, 0),
    ("Sg", 106, 0),
    ("Bh", 107, 0),
    ("Hs", 108, 0),
    ("Mt", 109, 0),
    ("Ds", 110, 0),
    ("Rg", 111, 0),
    ("Cn", 112, 0),
    ("Nh", 113, 0),
    ("Fl", 114, 0),
    ("Mc", 115, 0),
    ("Lv", 116, 0),
    ("Ts", 117, 0),
    ("Og", 118, 0),
];

/// Aromatic symbols allowed inside brackets, as their element.
const AROMATIC_BRACKET: &[(&str, &str)] = &[
    ("b", "B"),
    ("c", "C"),
    ("n", "N"),
    ("o", "O"),
    ("p", "P"),
    ("s", "S"),
    ("se", "Se"),
    ("as", "As"),
];

/// No valence limit (metals, noble gases, unknown charges).
const UNLIMITED: u8 = u8::MAX;

fn element(symbol: &str) -> Option<(u8, u8)> {
    ELEMENTS.iter().find(|e| e.0 == symbol).map(|e| (e.1, e.2))
}

/// Largest valence of element `z` with `charge`, as RDKit counts it: that of the isoelectronic
/// element (N+ as C, O- as F), for the main-group elements whose valence RDKit limits.
fn max_valence(z: u8, charge: i8) -> u8 {
    let Some(&(_, _, own)) = ELEMENTS.iter().find(|e| e.1 == z) else {
        return UNLIMITED;
    };
    if own == 0 {
        return UNLIMITED;
    }
    if charge == 0 {
        return own;
    }
    if !(1..=10).contains(&z) {
        // Heavier charged atoms (S+, P-, ...): not limited here.
        return UNLIMITED;
    }
    match z as i16 - charge as i16 {
        // Isoelectronic with a noble gas, or with no electrons left: no bonds at all.
        iso if iso <= 2 || iso == 10 => 0,
        iso => ELEMENTS
            .iter()
            .find(|e| e.1 as i16 == iso)
            .map_or(UNLIMITED, |e| if e.2 > 0 { e.2 } else { UNLIMITED }),
    }
}

/// The organic-subset atoms written without brackets: (largest valence, valence a Kekulé
/// structure gives it, aromatic).
fn organic(c: char) -> Option<(u8, u8, bool)> {
    Some(match c {
        'B' => (3, 3, false),
        'C' => (4, 4, false),
        'N' => (3, 3, false),
        'O' => (2, 2, false),
        'P' => (7, 3, false),
        'S' => (6, 2, false),
        'F' => (1, 1, false),
        'I' => (5, 1, false),
        'b' => (3, 3, true),
        'c' => (4, 4, true),
        'n' => (3, 3, true),
        'o' => (2, 2, true),
        'p' => (7, 3, true),
        's' => (6, 2, true),
        _ => return None,
    })
}

/// The lowest valence of element `z` with `charge` (isoelectronic: N+ as C, O+ as N, C- as N),
/// which an aromatic atom reaches in a Kekulé structure; 0 where unknown.
fn kekule_valence(z: u8, charge: i8) -> u8 {
    match z as i16 - charge as i16 {
        5 | 7 | 15 | 33 => 3,
        6 | 14 => 4,
        8 | 16 | 34 => 2,
        _ => 0,
    }
}

/// A bond symbol's order in valence units (aromatic counts 1, `.` none).
fn bond_order(c: char) -> Option<u8> {
    Some(match c {
        '-' | '/' | '\\' | ':' => 1,
        '=' => 2,
        '#' => 3,
        '$' => 4,
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Atom {
    /// Valence units already taken by bonds (and bracket hydrogens).
    used: u8,
    /// Largest allowed.
    max: u8,
    /// Written in lower case: it must take part in a Kekulé structure.
    aromatic: bool,
    /// The valence a Kekulé structure gives it (0: unknown, not checked).
    kekule: u8,
    /// Bracket hydrogens.
    hydrogens: u8,
    /// Aromatic bonds (between two aromatic atoms, unwritten or `:`).
    aromatic_bonds: u8,
    /// Valence of its other bonds.
    other_valence: u8,
    /// Open ring closures on it.
    open_rings: u8,
}

impl Atom {
    fn room(&self) -> u8 {
        self.max.saturating_sub(self.used)
    }

    /// Whether it needs one double bond among its aromatic bonds in a Kekulé structure (None:
    /// not aromatic or unknown).
    fn needs_double(&self) -> Option<bool> {
        if !self.aromatic || self.kekule == 0 {
            return None;
        }
        let taken = self.aromatic_bonds + self.other_valence + self.hydrogens;
        Some(self.kekule > taken)
    }
}

/// Where inside a bracket atom the reader is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bracket {
    /// Right after `[`, or inside the isotope digits (how many so far).
    Isotope(u8),
    /// An element symbol was read (a second letter may follow its first).
    Symbol,
    /// `@` read (`@@` allowed next).
    Chiral(u8),
    /// `H` read; `digit`: its count was written (one digit at most).
    Hydrogens { digit: bool },
    /// `+`/`-` read (`sign` ±1), `digits` of the magnitude so far.
    Charge { sign: i8, digits: u8 },
    /// `:` read, then class digits.
    Class(u8),
}

/// A bond about to be made: its order, and whether it may be aromatic (unwritten or `:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PendingBond {
    order: u8,
    may_be_aromatic: bool,
}

const IMPLICIT: PendingBond = PendingBond {
    order: 1,
    may_be_aromatic: true,
};

fn written_bond(c: char) -> Option<PendingBond> {
    bond_order(c).map(|order| PendingBond {
        order,
        may_be_aromatic: c == ':',
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Nothing read: an atom must come.
    Start,
    /// An atom (or a ring closure on it) was just read.
    AfterAtom,
    /// `)` was just read: like after an atom, but no ring-closure digit.
    AfterClose,
    /// A bond symbol was read: an atom must follow, or a ring-closure digit when the bond came
    /// right after an atom (`ring_ok`).
    AfterBond { bond: PendingBond, ring_ok: bool },
    /// `(` was read: a bond or an atom must follow.
    AfterOpen,
    /// `.` was read: an atom must follow (a new component).
    AfterDot,
    /// `%` was read (`digits` of the two-digit label so far; the bond written before it).
    Percent {
        digits: u8,
        value: u8,
        bond: Option<PendingBond>,
    },
    /// Inside `[...]`.
    InBracket(Bracket),
    /// EOS was read.
    Ended,
}

/// The grammar's state for one string being written.
#[derive(Debug, PartialEq, Eq)]
pub struct GrammarState {
    mode: Mode,
    atoms: Vec<Atom>,
    /// Aromatic bonds as atom pairs, for the Kekulé check.
    aromatic_edges: Vec<(u16, u16)>,
    /// The atom the next bond starts from.
    current: Option<u16>,
    /// Atoms at open branches, innermost last.
    branches: Vec<u16>,
    /// Open ring closures: (label, atom, bond written at the opening).
    rings: Vec<(u8, u16, Option<PendingBond>)>,
    /// Ring closures made, as atom pairs (lower first), to refuse a second one.
    ring_pairs: Vec<(u16, u16)>,
    /// The last atom was organic `C`/`B` with nothing after it: `l`/`r` may make it Cl/Br.
    two_letter: Option<char>,
    /// Bracket atom being read: symbol text, hydrogens, charge, and the bond waiting for it.
    bracket_symbol: String,
    bracket_h: u8,
    bracket_charge: i8,
    bracket_bond: Option<PendingBond>,
    dead_end: bool,
}

impl Clone for GrammarState {
    fn clone(&self) -> Self {
        let mut out = Self::new();
        out.clone_from(self);
        out
    }

    /// Field by field, reusing `self`'s buffers: masks test every token on a scratch copy.
    fn clone_from(&mut self, source: &Self) {
        self.mode = source.mode;
        self.atoms.clone_from(&source.atoms);
        self.aromatic_edges.clone_from(&source.aromatic_edges);
        self.current = source.current;
        self.branches.clone_from(&source.branches);
        self.rings.clone_from(&source.rings);
        self.ring_pairs.clone_from(&source.ring_pairs);
        self.two_letter = source.two_letter;
        self.bracket_symbol.clone_from(&source.bracket_symbol);
        self.bracket_h = source.bracket_h;
        self.bracket_charge = source.bracket_charge;
        self.bracket_bond = source.bracket_bond;
        self.dead_end = source.dead_end;
    }
}

impl Default for GrammarState {
    fn default() -> Self {
        Self::new()
    }
}

impl GrammarState {
    /// The state before the first character.
    pub fn new() -> Self {
        Self {
            mode: Mode::Start,
            atoms: Vec::new(),
            aromatic_edges: Vec::new(),
            current: None,
            branches: Vec::new(),
            rings: Vec::new(),
            ring_pairs: Vec::new(),
            two_letter: None,
            bracket_symbol: String::new(),
            bracket_h: 0,
            bracket_charge: 0,
            bracket_bond: None,
            dead_end: false,
        }
    }

    /// Whether EOS was allowed only because nothing else was (the string may be invalid).
    pub fn dead_end(&self) -> bool {
        self.dead_end
    }

    /// Whether the string read so far is a complete SMILES (EOS may follow): nothing open, and
    /// every aromatic system has a Kekulé structure.
    pub fn complete(&self) -> bool {
        matches!(self.mode, Mode::AfterAtom | Mode::AfterClose)
            && self.branches.is_empty()
            && self.rings.is_empty()
            // Every other aromatic system was checked when its last atom could no longer gain a
            // bond; only the current atom's is still open.
            && self.current.is_none_or(|c| self.kekulizable_from(c, true))
    }

    fn room(&self, atom: Option<u16>) -> u8 {
        atom.map_or(UNLIMITED, |a| self.atoms[a as usize].room())
    }

    /// Whether atom `a` can still gain bonds: the current atom, a branch point, or one with an
    /// open ring closure.
    fn live(&self, a: u16) -> bool {
        self.current == Some(a) || self.branches.contains(&a) || self.atoms[a as usize].open_rings > 0
    }

    /// Records a bond of `order` between atoms `a` and `b` (valence and Kekulé bookkeeping).
    fn link(&mut self, a: u16, b: u16, bond: PendingBond) {
        let aromatic =
            bond.may_be_aromatic && self.atoms[a as usize].aromatic && self.atoms[b as usize].aromatic;
        for x in [a, b] {
            let atom = &mut self.atoms[x as usize];
            atom.used += bond.order;
            if aromatic {
                atom.aromatic_bonds += 1;
            } else {
                atom.other_valence += bond.order;
            }
        }
        if aromatic {
            self.aromatic_edges.push((a, b));
        }
    }

    /// Adds an atom, joined to the current one by `bond` (None: the first atom of a component).
    fn add_atom(&mut self, mut atom: Atom, bond: Option<PendingBond>) -> bool {
        let order = bond.map_or(0, |b| b.order);
        if order > 0 && self.room(self.current) < order {
            return false;
        }
        if atom.max != UNLIMITED && order as u16 + atom.used as u16 > atom.max as u16 {
            return false;
        }
        let previous = self.current;
        atom.aromatic_bonds = 0;
        atom.other_valence = 0;
        self.atoms.push(atom);
        let new = (self.atoms.len() - 1) as u16;
        if let (Some(bond), Some(prev)) = (bond, previous) {
            self.link(prev, new, bond);
        }
        self.current = Some(new);
        self.mode = Mode::AfterAtom;
        // The previous atom may have taken its last bond.
        previous.is_none_or(|p| self.kekulizable_from(p, false))
    }

    /// The bond the next atom takes: a written one, an implicit single/aromatic one, or none
    /// (at the start or after `.`); None where no atom may come.
    fn pending_bond(&self) -> Option<Option<PendingBond>> {
        match self.mode {
            Mode::Start | Mode::AfterDot => Some(None),
            Mode::AfterAtom | Mode::AfterClose | Mode::AfterOpen => Some(Some(IMPLICIT)),
            Mode::AfterBond { bond, .. } => Some(Some(bond)),
            _ => None,
        }
    }

    /// Ring-closure label `label` on the current atom, with `written` the bond symbol before it.
    fn ring(&mut self, label: u8, written: Option<PendingBond>) -> bool {
        let Some(cur) = self.current else { return false };
        if let Some(i) = self.rings.iter().position(|r| r.0 == label) {
            let (_, other, opened) = self.rings[i];
            if other == cur {
                return false;
            }
            let pair = (other.min(cur), other.max(cur));
            if self.ring_pairs.contains(&pair) {
                return false;
            }
            let bond = match (opened, written) {
                (Some(a), Some(b)) if a.order != b.order => return false,
                (Some(a), _) => a,
                (None, Some(b)) => b,
                (None, None) => IMPLICIT,
            };
            // The opening atom reserved its bond's order (1 when none was written there).
            let reserved = opened.map_or(1, |b| b.order);
            let extra = bond.order.saturating_sub(reserved);
            if self.room(Some(cur)) < bond.order || self.room(Some(other)) < extra {
                return false;
            }
            self.atoms[other as usize].used -= reserved;
            self.atoms[other as usize].open_rings -= 1;
            self.link(other, cur, bond);
            self.rings.remove(i);
            self.ring_pairs.push(pair);
            self.mode = Mode::AfterAtom;
            // The opening atom may have taken its last bond.
            self.kekulizable_from(other, false)
        } else {
            let order = written.map_or(1, |b| b.order);
            if self.room(Some(cur)) < order {
                return false;
            }
            self.atoms[cur as usize].used += order;
            self.atoms[cur as usize].open_rings += 1;
            self.rings.push((label, cur, written));
            self.mode = Mode::AfterAtom;
            true
        }
    }

    /// Whether the string can still be completed: with ring closures open, some atom reachable
    /// by closing branches must have valence left to continue the chain.
    fn completable(&self) -> bool {
        if self.rings.is_empty() || !matches!(self.mode, Mode::AfterAtom | Mode::AfterClose) {
            return true;
        }
        self.room(self.current) > 0 || self.branches.iter().any(|&b| self.room(Some(b)) > 0)
    }

    /// Reads one character; false if it cannot come next (the state is then unusable: callers
    /// test on a copy).
    pub fn push(&mut self, c: char) -> bool {
        self.read(c) && self.completable()
    }

    fn read(&mut self, c: char) -> bool {
        let two_letter = self.two_letter.take();
        let mode = self.mode;
        match mode {
            Mode::Ended => false,
            Mode::InBracket(stage) => self.bracket_char(stage, c),
            Mode::Percent { digits, value, bond } => {
                let Some(d) = c.to_digit(10) else { return false };
                let value = value * 10 + d as u8;
                if digits == 0 {
                    self.mode = Mode::Percent {
                        digits: 1,
                        value,
                        bond,
                    };
                    true
                } else {
                    self.ring(value, bond)
                }
            }
            _ => {
                let after_atom = matches!(mode, Mode::AfterAtom | Mode::AfterClose);
                // A bond written right after an atom, which a ring-closure digit may take.
                let written = match mode {
                    Mode::AfterBond { bond, ring_ok: true } => Some(bond),
                    _ => None,
                };
                // The second letter of Cl / Br.
                if let (Some(first), Mode::AfterAtom) = (two_letter, mode) {
                    if (first, c) == ('C', 'l') || (first, c) == ('B', 'r') {
                        let cur = self.current.expect("an atom was just read") as usize;
                        if self.atoms[cur].used > 1 {
                            return false;
                        }
                        self.atoms[cur].max = 1;
                        self.atoms[cur].kekule = 1;
                        return true;
                    }
                }
                if let Some((max, kekule, aromatic)) = organic(c) {
                    let Some(bond) = self.pending_bond() else {
                        return false;
                    };
                    let atom = Atom {
                        used: 0,
                        max,
                        aromatic,
                        kekule,
                        hydrogens: 0,
                        aromatic_bonds: 0,
                        other_valence: 0,
                        open_rings: 0,
                    };
                    if !self.add_atom(atom, bond) {
                        return false;
                    }
                    if c == 'C' || c == 'B' {
                        self.two_letter = Some(c);
                    }
                    return true;
                }
                match c {
                    '[' => {
                        let Some(bond) = self.pending_bond() else {
                            return false;
                        };
                        if bond.is_some_and(|b| self.room(self.current) < b.order) {
                            return false;
                        }
                        self.bracket_bond = bond;
                        self.bracket_symbol.clear();
                        self.bracket_h = 0;
                        self.bracket_charge = 0;
                        self.mode = Mode::InBracket(Bracket::Isotope(0));
                        true
                    }
                    _ if bond_order(c).is_some() => {
                        let bond = written_bond(c).expect("a bond symbol");
                        if !(after_atom || mode == Mode::AfterOpen) || self.room(self.current) < bond.order {
                            return false;
                        }
                        self.mode = Mode::AfterBond {
                            bond,
                            ring_ok: mode == Mode::AfterAtom,
                        };
                        true
                    }
                    '.' if after_atom && self.branches.is_empty() => {
                        let previous = self.current.take();
                        self.mode = Mode::AfterDot;
                        previous.is_none_or(|p| self.kekulizable_from(p, false))
                    }
                    '(' if after_atom => {
                        let Some(cur) = self.current else { return false };
                        if self.room(Some(cur)) == 0 {
                            return false;
                        }
                        self.branches.push(cur);
                        self.mode = Mode::AfterOpen;
                        true
                    }
                    ')' if after_atom => match self.branches.pop() {
                        Some(atom) => {
                            let previous = self.current.replace(atom);
                            self.mode = Mode::AfterClose;
                            previous.is_none_or(|p| self.kekulizable_from(p, false))
                        }
                        None => false,
                    },
                    '%' if mode == Mode::AfterAtom || written.is_some() => {
                        self.mode = Mode::Percent {
                            digits: 0,
                            value: 0,
                            bond: written,
                        };
                        true
                    }
                    '0'..='9' if mode == Mode::AfterAtom || written.is_some() => {
                        self.ring(c as u8 - b'0', written)
                    }
                    _ => false,
                }
            }
        }
    }

    /// The Kekulé check of atom `a`'s aromatic system, once no atom of it can gain bonds (or,
    /// with `at_end`, at the end of the string): the atoms that need a double bond must pair up
    /// along aromatic bonds. True while the system is still open, or when it pairs up.
    fn kekulizable_from(&self, a: u16, at_end: bool) -> bool {
        if at_end {
            if !self.atoms[a as usize].aromatic {
                return true;
            }
        } else if let Some(ok) = self.kekule_lookahead(a, false, |x| self.live(x)) {
            // Not aromatic, or an atom of its system can still gain a bond: no search needed.
            return ok;
        }
        // Past `kekule_lookahead`'s search (too many atoms for it), a live atom still leaves
        // the system open.
        if !at_end && self.atoms.len() > MAX_TRACKED && self.aromatic_system(a).iter().any(|&x| self.live(x))
        {
            return true;
        }
        self.closed_system_kekulizes(a, None)
    }

    /// The atoms joined to `a` by aromatic bonds, `a` included.
    fn aromatic_system(&self, a: u16) -> Vec<u16> {
        let mut system = vec![a];
        let mut i = 0;
        while i < system.len() {
            let x = system[i];
            for &(p, q) in &self.aromatic_edges {
                let y = if p == x {
                    q
                } else if q == x {
                    p
                } else {
                    continue;
                };
                if !system.contains(&y) {
                    system.push(y);
                }
            }
            i += 1;
        }
        system
    }

    /// Whether the atoms of `a`'s aromatic system that need a double bond pair up along its
    /// aromatic bonds (a perfect matching), for a system no atom of which can gain bonds;
    /// `extra_order`: `a` takes a further non-aromatic bond of that order first (a move the
    /// caller is weighing). Bit sets where the molecule fits them: this runs at most steps.
    pub(super) fn closed_system_kekulizes(&self, a: u16, extra_order: Option<u8>) -> bool {
        if self.atoms.len() <= MAX_TRACKED {
            self.closed_kekulizes_in_bits(a, extra_order)
        } else {
            self.closed_kekulizes_in_lists(a, extra_order)
        }
    }

    /// Whether atom `x` needs a double bond, `a` with `extra_order` more valence.
    fn needs_double_after(&self, x: u16, a: u16, extra_order: Option<u8>) -> Option<bool> {
        let mut atom = self.atoms[x as usize];
        if x == a {
            atom.other_valence += extra_order.unwrap_or(0);
        }
        atom.needs_double()
    }

    fn closed_kekulizes_in_bits(&self, a: u16, extra_order: Option<u8>) -> bool {
        // The system: grown from `a` a ring of neighbours at a time.
        let (mut system, mut frontier) = (1u128 << a, 1u128 << a);
        while frontier != 0 {
            let mut next = 0u128;
            for &(p, q) in &self.aromatic_edges {
                if frontier >> p & 1 == 1 {
                    next |= 1 << q;
                }
                if frontier >> q & 1 == 1 {
                    next |= 1 << p;
                }
            }
            frontier = next & !system;
            system |= next;
        }
        let mut needy = 0u128;
        let mut rest = system;
        while rest != 0 {
            let x = rest.trailing_zeros() as u16;
            rest &= rest - 1;
            match self.needs_double_after(x, a, extra_order) {
                None => return true, // an atom this check does not know: leave it to RDKit
                Some(true) => needy |= 1 << x,
                Some(false) => {}
            }
        }
        needy.count_ones().is_multiple_of(2) && perfect_matching_bits(needy, &self.aromatic_edges)
    }

    fn closed_kekulizes_in_lists(&self, a: u16, extra_order: Option<u8>) -> bool {
        let mut needy = Vec::new();
        for x in self.aromatic_system(a) {
            match self.needs_double_after(x, a, extra_order) {
                None => return true,
                Some(true) => needy.push(x),
                Some(false) => {}
            }
        }
        if needy.len() % 2 == 1 {
            return false;
        }
        let edges: Vec<(u16, u16)> = self
            .aromatic_edges
            .iter()
            .copied()
            .filter(|&(p, q)| needy.contains(&p) && needy.contains(&q))
            .collect();
        perfect_matching(&needy, &edges)
    }

    fn bracket_char(&mut self, stage: Bracket, c: char) -> bool {
        use Bracket::*;
        let next = match (stage, c) {
            (Isotope(n), '0'..='9') if n < 3 => Isotope(n + 1),
            (Isotope(_), _) if c.is_ascii_alphabetic() => {
                self.bracket_symbol.push(c);
                if !self.symbol_prefix_ok() {
                    return false;
                }
                Symbol
            }
            (Symbol, _) if c.is_ascii_lowercase() && self.bracket_symbol.len() == 1 => {
                self.bracket_symbol.push(c);
                if self.symbol_element().is_none() {
                    return false;
                }
                Symbol
            }
            (Symbol, '@') => Chiral(1),
            (Chiral(1), '@') => Chiral(2),
            (Symbol | Chiral(_), 'H') => {
                self.bracket_h = 1;
                Hydrogens { digit: false }
            }
            (Hydrogens { digit: false }, '0'..='9') => {
                self.bracket_h = c as u8 - b'0';
                Hydrogens { digit: true }
            }
            (Symbol | Chiral(_) | Hydrogens { .. }, '+' | '-') => {
                let sign = if c == '+' { 1 } else { -1 };
                self.bracket_charge = sign;
                Charge { sign, digits: 0 }
            }
            (Charge { sign, digits: 0 }, '+' | '-')
                if (c == '+') == (sign > 0) && self.bracket_charge.abs() < 3 =>
            {
                self.bracket_charge += sign;
                Charge { sign, digits: 0 }
            }
            // `+2`, `-12`: digits only after a single sign.
            (Charge { sign, digits }, '0'..='9')
                if digits < 2 && (digits > 0 || self.bracket_charge.abs() == 1) =>
            {
                let d = (c as u8 - b'0') as i8;
                self.bracket_charge = if digits == 0 {
                    sign * d
                } else {
                    sign * (self.bracket_charge.abs() * 10 + d)
                };
                if self.bracket_charge.abs() > 15 {
                    return false;
                }
                Charge {
                    sign,
                    digits: digits + 1,
                }
            }
            (Symbol | Chiral(_) | Hydrogens { .. } | Charge { .. }, ':') => Class(0),
            (Class(n), '0'..='9') if n < 4 => Class(n + 1),
            (Symbol | Chiral(_) | Hydrogens { .. } | Charge { .. } | Class(1..), ']') => {
                return self.close_bracket()
            }
            _ => return false,
        };
        self.mode = Mode::InBracket(next);
        self.bracket_closable(next)
    }

    /// `]`: the bracket atom as read so far joins the molecule.
    fn close_bracket(&mut self) -> bool {
        let Some(z) = self.symbol_element() else {
            return false;
        };
        let aromatic = self.bracket_symbol.starts_with(|c: char| c.is_ascii_lowercase());
        let atom = Atom {
            used: self.bracket_h,
            max: max_valence(z, self.bracket_charge),
            aromatic,
            kekule: kekule_valence(z, self.bracket_charge),
            hydrogens: self.bracket_h,
            aromatic_bonds: 0,
            other_valence: 0,
            open_rings: 0,
        };
        self.add_atom(atom, self.bracket_bond)
    }

    /// Whether some way of finishing the bracket atom from `stage` gives an atom within its
    /// valence (the hydrogens so far, the bond into it, a charge still to be written): `[NH4`
    /// may become `[NH4+]`, `[nH5` and `[nH-` cannot close.
    fn bracket_closable(&self, stage: Bracket) -> bool {
        use Bracket::*;
        let Some(z) = self.symbol_element() else {
            // No symbol yet, or its first letter of two.
            return true;
        };
        let charges: &[i8] = match stage {
            Isotope(_) | Class(0) => return true,
            Symbol | Chiral(_) | Hydrogens { .. } => &[0, 1, -1, 2, -2, 3, -3],
            Charge { sign: 1, digits: 0 } => &[1, 2, 3],
            Charge { digits: 0, .. } => &[-1, -2, -3],
            Charge { .. } | Class(_) => std::slice::from_ref(&self.bracket_charge),
        };
        let taken = self.bracket_h as u16 + self.bracket_bond.map_or(0, |b| b.order) as u16;
        charges.iter().any(|&q| {
            let max = max_valence(z, q);
            max == UNLIMITED || taken <= max as u16
        })
    }

    /// Whether the bracket symbol read so far is an element or the start of one.
    fn symbol_prefix_ok(&self) -> bool {
        let s = self.bracket_symbol.as_str();
        ELEMENTS.iter().any(|e| e.0.starts_with(s)) || AROMATIC_BRACKET.iter().any(|a| a.0.starts_with(s))
    }

    /// The atomic number of the complete bracket symbol, if it is one.
    fn symbol_element(&self) -> Option<u8> {
        let s = self.bracket_symbol.as_str();
        let symbol = AROMATIC_BRACKET.iter().find(|a| a.0 == s).map_or(s, |a| a.1);
        element(symbol).map(|(z, _)| z)
    }
}

/// Whether `atoms` can be paired up along `edges` (a perfect matching; small systems, so a
/// backtracking search).
fn perfect_matching(atoms: &[u16], edges: &[(u16, u16)]) -> bool {
    fn search(unmatched: &mut Vec<u16>, edges: &[(u16, u16)]) -> bool {
        let Some(&first) = unmatched.first() else {
            return true;
        };
        unmatched.remove(0);
        for &(p, q) in edges {
            let other = if p == first {
                q
            } else if q == first {
                p
            } else {
                continue;
            };
            if let Some(i) = unmatched.iter().position(|&u| u == other) {
                unmatched.remove(i);
                if search(unmatched, edges) {
                    return true;
                }
                unmatched.insert(i, other);
            }
        }
        unmatched.insert(0, first);
        false
    }
    search(&mut atoms.to_vec(), edges)
}

/// [`perfect_matching`] of the atoms in bit set `unmatched` along those of `edges` that join two
/// of them.
fn perfect_matching_bits(unmatched: u128, edges: &[(u16, u16)]) -> bool {
    if unmatched == 0 {
        return true;
    }
    let first = unmatched.trailing_zeros() as u16;
    let rest = unmatched & !(1u128 << first);
    edges.iter().any(|&(p, q)| {
        let other = match (p == first, q == first) {
            (true, _) => q,
            (_, true) => p,
            _ => return false,
        };
        rest >> other & 1 == 1 && perfect_matching_bits(rest & !(1u128 << other), edges)
    })
}

/// Atoms the Kekulé searches track in bit sets (`u128`); a larger molecule takes slower paths.
const MAX_TRACKED: usize = 128;

/// The grammar over a vocabulary: which token ids may follow a state.
#[derive(Debug, Clone)]
pub struct SmilesGrammar {
    /// Each token's characters (empty for the special tokens).
    chars: Vec<Vec<char>>,
    /// Each token's kind, which picks its check in the mask's fast path.
    kinds: Vec<lookahead::TokenKind>,
    /// The single-character tokens: what can finish a bracket atom begun character by character.
    alphabet: Vec<char>,
    /// Common bracket-atom symbols the alphabet can write, tried when `[` has no symbol yet.
    bracket_candidates: Vec<String>,
}

impl SmilesGrammar {
    /// The grammar for `vocab`'s tokens.
    pub fn new(vocab: &Vocab) -> Self {
        let chars = (0..vocab.len() as u32)
            .map(|id| {
                if id <= EOS {
                    Vec::new()
                } else {
                    vocab.token(id).unwrap_or_default().chars().collect()
                }
            })
            .collect::<Vec<Vec<char>>>();
        let alphabet: Vec<char> = chars.iter().filter(|c| c.len() == 1).map(|c| c[0]).collect();
        let bracket_candidates = ["C", "c", "N", "n", "O", "o", "S", "s"]
            .iter()
            .filter(|s| s.chars().all(|c| alphabet.contains(&c)))
            .map(|s| s.to_string())
            .collect();
        Self {
            kinds: chars.iter().map(|c| lookahead::TokenKind::of(c)).collect(),
            chars,
            alphabet,
            bracket_candidates,
        }
    }

    /// Whether a state inside a bracket atom can still close it with characters of the
    /// vocabulary (`[nH1` cannot when `+` is not one of them): every hydrogen count and charge
    /// the vocabulary can still write is tried, each closed as `]` would and checked for a way
    /// to complete the string.
    fn bracket_finishable(&self, state: &GrammarState) -> bool {
        use Bracket::*;
        let Mode::InBracket(stage) = state.mode else {
            return true;
        };
        if state.symbol_element().is_none() {
            if state.bracket_symbol.is_empty() {
                // The element is still to be written: a common one, plain, must fit (the bond
                // into it can break the Kekulé structure of the atom before, whatever it is).
                let mut trial = state.clone();
                return self.bracket_candidates.iter().any(|symbol| {
                    trial.clone_from(state);
                    trial.bracket_symbol.clone_from(symbol);
                    trial.close_bracket() && trial.completable()
                });
            }
            return true; // the first letter of a two-letter symbol
        }
        let has = |c: char| self.alphabet.contains(&c);
        let digit_values: Vec<u8> = self
            .alphabet
            .iter()
            .filter_map(|c| c.to_digit(10).map(|d| d as u8))
            .collect();
        let digits = !digit_values.is_empty();
        let mut hs = vec![state.bracket_h];
        let mut qs = vec![state.bracket_charge];
        let signs = |qs: &mut Vec<i8>, sign: i8| {
            // One sign, then repeated signs or a digit for up to ±3.
            qs.push(sign);
            if has(if sign > 0 { '+' } else { '-' }) || digits {
                qs.extend([2 * sign, 3 * sign]);
            }
        };
        match stage {
            Isotope(_) | Class(0) => return true,
            Symbol | Chiral(_) if has('H') => {
                hs.push(1);
                hs.extend(&digit_values);
            }
            Hydrogens { digit: false } => hs.extend(&digit_values),
            _ => {}
        }
        match stage {
            Symbol | Chiral(_) | Hydrogens { .. } => {
                if has('+') {
                    signs(&mut qs, 1);
                }
                if has('-') {
                    signs(&mut qs, -1);
                }
            }
            Charge { sign, digits: 0 } => signs(&mut qs, sign),
            _ => {}
        }
        let mut trial = state.clone();
        hs.iter().any(|&h| {
            qs.iter().any(|&q| {
                trial.clone_from(state);
                trial.bracket_h = h;
                trial.bracket_charge = q;
                trial.close_bracket() && trial.completable()
            })
        })
    }

    /// Sets `allowed[id]` for every token that may follow `state` (EOS when the string is complete,
    /// or when nothing else is: a dead end). Returns whether it was a dead end.
    pub fn allowed(&self, state: &GrammarState, allowed: &mut [bool]) -> bool {
        self.allowed_among(state, allowed, |_| true)
    }

    /// [`SmilesGrammar::allowed`] checking only the tokens `consider` picks (the others are
    /// marked forbidden unchecked): sampling skips the tokens the model gives no weight. Where
    /// none of those may follow, every token is checked, so that EOS is still allowed as a dead
    /// end only when nothing at all could follow.
    pub fn allowed_among(
        &self,
        state: &GrammarState,
        allowed: &mut [bool],
        consider: impl Fn(usize) -> bool,
    ) -> bool {
        let memo = lookahead::MaskMemo::default();
        let mut scratch = None;
        let any = self.mark_allowed(state, allowed, &consider, &memo, &mut scratch)
            || self.mark_allowed(state, allowed, &|_| true, &memo, &mut scratch);
        let complete = state.complete();
        allowed[EOS as usize] = complete || !any;
        !complete && !any
    }

    /// One pass of [`SmilesGrammar::allowed_among`] over the tokens `only` picks (EOS aside):
    /// whether any may follow. Most tokens are decided from the state alone (`memo` shared
    /// between them); the rest are read on `scratch`, a copy of the state.
    fn mark_allowed(
        &self,
        state: &GrammarState,
        allowed: &mut [bool],
        only: &impl Fn(usize) -> bool,
        memo: &lookahead::MaskMemo,
        scratch: &mut Option<GrammarState>,
    ) -> bool {
        let mut any = false;
        for (id, chars) in self.chars.iter().enumerate() {
            let ok = only(id)
                && self.lookahead(state, id, memo).unwrap_or_else(|| {
                    let copy = scratch.get_or_insert_with(GrammarState::new);
                    copy.clone_from(state);
                    chars.iter().all(|&c| copy.push(c)) && self.bracket_finishable(copy)
                });
            allowed[id] = ok;
            any |= ok;
        }
        any
    }

    /// Advances `state` by token `id` (EOS ends it). Returns false if the token was not allowed.
    pub fn advance(&self, state: &mut GrammarState, id: u32) -> bool {
        if id == EOS {
            let ok = state.complete();
            state.dead_end = !ok;
            state.mode = Mode::Ended;
            return ok;
        }
        let chars = &self.chars[id as usize];
        !chars.is_empty() && chars.iter().all(|&c| state.push(c))
    }
}

impl SmilesGrammar {
    /// The masks grammar-constrained sampling applies along `tokens` (the ids after BOS, EOS
    /// included when present): position `i`'s allowed ids in `[i * V, (i + 1) * V)`, V the
    /// vocabulary size. `None` when a token is one the grammar does not allow where it stands.
    /// What teacher-forced likelihoods of grammar-sampled sequences are renormalised over.
    pub fn masks_along(&self, tokens: &[u32]) -> Option<Vec<bool>> {
        let v = self.chars.len();
        let mut masks = vec![false; tokens.len() * v];
        let mut state = GrammarState::new();
        for (allowed, &id) in masks.chunks_mut(v).zip(tokens) {
            self.allowed(&state, allowed);
            if !allowed.get(id as usize).copied().unwrap_or(false) {
                return None;
            }
            self.advance(&mut state, id);
        }
        Some(masks)
    }
}

#[cfg(test)]
impl SmilesGrammar {
    /// Advances `state` by a token drawn uniformly from those allowed (`allowed` is scratch);
    /// false at EOS. The random walks of the tests.
    fn random_step(&self, state: &mut GrammarState, allowed: &mut [bool], rng: &mut crate::rng::Rng) -> bool {
        self.allowed(state, allowed);
        let options: Vec<u32> = (0..allowed.len() as u32)
            .filter(|&i| allowed[i as usize])
            .collect();
        let id = options[(rng.next_u64() % options.len() as u64) as usize];
        if id == EOS {
            return false;
        }
        assert!(self.advance(state, id));
        true
    }
}

/// Whether purr reads `smiles` into a molecular graph (syntax, ring closures, bond joins): the
/// independent check of what grammar-constrained decoding writes.
pub fn purr_reads(smiles: &str) -> bool {
    let mut builder = purr::graph::Builder::new();
    purr::read::read(smiles, &mut builder, None).is_ok() && builder.build().is_ok()
}

/// Whether `smiles` reads through the grammar to a complete string.
pub fn grammatical(smiles: &str) -> bool {
    let mut s = GrammarState::new();
    smiles.chars().all(|c| s.push(c)) && s.complete()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_smiles() {
        for smi in [
            "C",
            "CCO",
            "c1ccccc1",
            "CC(=O)Oc1ccccc1C(=O)O",
            "C1CC2CCC1C2",
            "ClCBr",
            "C=1CCCCC=1",
            "C%10CCCCC%10",
            "[nH]1cccc1",
            "c1cc[nH]c1",
            "C[N+](C)(C)C",
            "[O-]C=O",
            "N#N",
            "[2H]C",
            "C[C@@H](N)C(=O)O",
            "F/C=C/F",
            "CCS(=O)(=O)N",
            "O=P(O)(O)O",
            "[Na+].[Cl-]",
            "C(C)(C)(C)C",
            "O=c1cccc[nH]1",
            "[Se]",
            "c1cc[se]c1",
            "[NH4+]",
            "[Fe+2]",
            "CC[S@](=O)C",
        ] {
            assert!(grammatical(smi), "{smi}");
        }
    }

    #[test]
    fn refuses_broken_smiles() {
        for smi in [
            "",
            "C(",
            "C)",
            "C()C",
            "(C)",
            "C1CC",
            "C=",
            "=C",
            "C11",
            "C12CC12",
            "C=1CC-1",
            "C(C)1CC1",
            "C(=1CC1)",
            "C(C)=1CC1",
            "C[",
            "C[X]",
            "C[C",
            "Cl(C)C",
            "C=Cl",
            "O(C)(C)C",
            "C(C)(C)(C)(C)C",
            "FC(F)(F)(F)F",
            "N(C)(C)(C)C",
            "C#C#C",
            "C=O=C",
            "[CH5]",
            "[OH3]",
            "[nH12]",
            "[nH5]",
            "[NH4-]",
            "[nH-]1cccc1",
            "C[N-3]C",
            "[nH4-3]",
            "C..C",
            "C.",
            "CC(C.C)",
            "1CC1",
            "c1ccccc1)",
        ] {
            assert!(!grammatical(smi), "{smi:?}");
        }
    }

    /// Everything the grammar accepts, purr reads: random strings over SMILES characters.
    #[test]
    fn grammar_accepts_only_what_purr_reads() {
        let alphabet: Vec<char> = "CCCCccnNOo()()=#12123[]H+-lBrSsF%0".chars().collect();
        let mut rng = crate::rng::Rng::new(5);
        let mut accepted = 0;
        for _ in 0..200_000 {
            let len = 1 + (rng.next_u64() % 14) as usize;
            let s: String = (0..len)
                .map(|_| alphabet[(rng.next_u64() % alphabet.len() as u64) as usize])
                .collect();
            if grammatical(&s) {
                accepted += 1;
                assert!(purr_reads(&s), "grammar accepts {s:?}, purr does not");
            }
        }
        assert!(accepted > 500, "only {accepted} random strings were grammatical");
    }

    #[test]
    fn valid_smiles_are_read_by_purr_too() {
        for smi in [
            "CCO",
            "c1ccccc1",
            "C%10CCCCC%10",
            "[nH]1cccc1",
            "C[N+](C)(C)C",
            "F/C=C/F",
        ] {
            assert!(purr_reads(smi), "{smi}");
        }
        assert!(!purr_reads("C1CC") && !purr_reads("C(") && !purr_reads("C=1CC-1"));
    }

    fn vocab() -> Vocab {
        Vocab::from_corpus(
            ["CCO", "c1ccccc1Cl", "C(=O)N[nH]#B2rS3456Fso-"],
            crate::TokenMode::Char,
        )
    }

    #[test]
    fn masks_follow_the_grammar() {
        let v = vocab();
        let g = SmilesGrammar::new(&v);
        let mut allowed = vec![false; v.len()];
        let mut state = GrammarState::new();
        let names = |allowed: &[bool]| -> String {
            (0..v.len() as u32)
                .filter(|&i| allowed[i as usize])
                .map(|i| v.token(i).unwrap().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        g.allowed(&state, &mut allowed);
        // At the start: atoms and '[' only.
        assert_eq!(names(&allowed), "B C F N O S [ c n o s");
        for t in v.encode("C(=O").unwrap() {
            assert!(g.advance(&mut state, t));
        }
        g.allowed(&state, &mut allowed);
        // O has one bond of valence left after '=': no second double bond, no EOS inside a branch.
        assert!(allowed[v.encode(")").unwrap()[0] as usize]);
        assert!(!allowed[EOS as usize]);
        assert!(!allowed[v.encode("=").unwrap()[0] as usize]);
        assert!(!allowed[v.encode("(").unwrap()[0] as usize]);
        for t in v.encode(")").unwrap() {
            assert!(g.advance(&mut state, t));
        }
        g.allowed(&state, &mut allowed);
        assert!(allowed[EOS as usize]);
        assert!(
            !allowed[v.encode("1").unwrap()[0] as usize],
            "no ring digit after ')'"
        );
    }

    /// A ring left open needs an atom with valence left: after `C1(F)(F)` a last F would leave
    /// nothing to close the ring with, so it is masked while C is not.
    #[test]
    fn no_move_that_leaves_a_ring_unclosable() {
        let v = vocab();
        let g = SmilesGrammar::new(&v);
        let mut state = GrammarState::new();
        for t in v.encode("C1(F)(F)").unwrap() {
            assert!(g.advance(&mut state, t));
        }
        let mut allowed = vec![false; v.len()];
        assert!(!g.allowed(&state, &mut allowed), "not a dead end");
        assert!(!allowed[v.encode("F").unwrap()[0] as usize]);
        assert!(allowed[v.encode("C").unwrap()[0] as usize]);
        assert!(!allowed[EOS as usize]);
    }

    /// A bracket atom goes on only where the vocabulary can close it: after `C#[n`, an H would
    /// need a `+` for the fourth bond, so without `+` in the vocabulary H is masked.
    #[test]
    fn bracket_atoms_close_with_the_vocabulary() {
        let v = vocab(); // no '+'
        let g = SmilesGrammar::new(&v);
        let mut state = GrammarState::new();
        for t in v.encode("C#[n").unwrap() {
            assert!(g.advance(&mut state, t), "{}", v.decode(&[t]));
        }
        let mut allowed = vec![false; v.len()];
        assert!(!g.allowed(&state, &mut allowed));
        let names: Vec<&str> = (0..v.len() as u32)
            .filter(|&i| allowed[i as usize])
            .map(|i| v.token(i).unwrap())
            .collect();
        assert!(!names.contains(&"H") && names.contains(&"]"), "{names:?}");
        // With `+` in the vocabulary, `[nH+]` is a way out.
        let v = Vocab::from_corpus(["C#[nH+]"], crate::TokenMode::Char);
        let g = SmilesGrammar::new(&v);
        let mut state = GrammarState::new();
        for t in v.encode("C#[n").unwrap() {
            assert!(g.advance(&mut state, t));
        }
        let mut allowed = vec![false; v.len()];
        g.allowed(&state, &mut allowed);
        assert!(allowed[v.encode("H").unwrap()[0] as usize]);
    }

    /// The bit-set matching (molecules up to 128 atoms) agrees with the list one (larger
    /// molecules), on every aromatic atom of states reached by random walks through the grammar,
    /// with and without a further bond on the atom.
    #[test]
    fn kekule_matching_in_bits_agrees_with_lists() {
        let vocab = vocab();
        let g = SmilesGrammar::new(&vocab);
        let mut rng = crate::rng::Rng::new(5);
        let mut allowed = vec![false; vocab.len()];
        let (mut compared, mut refused) = (0usize, 0usize);
        for _ in 0..2000 {
            let mut state = GrammarState::new();
            for _ in 0..60 {
                for a in 0..state.atoms.len() as u16 {
                    if !state.atoms[a as usize].aromatic {
                        continue;
                    }
                    for extra in [None, Some(1), Some(2)] {
                        let bits = state.closed_kekulizes_in_bits(a, extra);
                        assert_eq!(
                            bits,
                            state.closed_kekulizes_in_lists(a, extra),
                            "atom {a} of {state:?}"
                        );
                        compared += 1;
                        refused += usize::from(!bits);
                    }
                }
                if !g.random_step(&mut state, &mut allowed, &mut rng) {
                    break;
                }
            }
        }
        // Both answers occur often enough for the comparison to mean something.
        assert!(
            compared > 10_000 && refused > 1_000,
            "{compared} compared, {refused} refused"
        );
    }

    /// Aromatic systems must have a Kekulé structure once closed (RDKit's kekulisation).
    #[test]
    fn aromatic_systems_must_kekulize() {
        for ok in [
            "c1ccccc1",
            "c1ccc2ccccc2c1",
            "c1cc[nH]c1",
            "n1ccccc1",
            "o1cccc1",
            "O=c1cccc[nH]1",
            "Cn1cccc1",
            "c1ccccc1-c1ccccc1",
            "c1ccc2[nH]ccc2c1",
            "C[n+]1ccccc1",
            "c1ccsc1",
        ] {
            assert!(grammatical(ok), "{ok}");
        }
        for bad in [
            "c1cccc1",
            "c1ccnc1",
            "c1ccc(=O)cc1",
            "c1ccccc1c1cccc1",
            "c1cccc2cccc12",
            "Cc1ccc(C)c1",
        ] {
            assert!(!grammatical(bad), "{bad}");
        }
        // A closed system is checked as soon as no atom of it can gain a bond: after `c1cccc1C`
        // the five-membered ring is final and odd.
        let mut s = GrammarState::new();
        assert!("c1cccc1".chars().all(|c| s.push(c)));
        assert!(!s.clone().push('C'));
        assert!(s.clone().push('('), "a branch keeps the last atom open");
    }
}
