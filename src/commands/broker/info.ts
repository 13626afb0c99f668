import {brokerInfo} from '../../cli/defs/broker.js'
import {oclifCommand} from '../../cli/oclif-adapter.js'

export default oclifCommand(brokerInfo)
