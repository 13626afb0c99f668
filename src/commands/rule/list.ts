import {ruleList} from '../../cli/defs/rule.js'
import {oclifCommand} from '../../cli/oclif-adapter.js'

export default oclifCommand(ruleList)
