import ruleMatch from '../../cli/defs/rule-match.js'
import {oclifCommand} from '../../cli/oclif-adapter.js'

export default oclifCommand(ruleMatch)
